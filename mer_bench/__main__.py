"""`python -m mer_bench` is the same as the `mer-bench` command."""

from mer_bench.cli import main

main()
