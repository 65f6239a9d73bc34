"""Classic multimodal sentiment baselines, registered with mer-bench through the ``mer_bench`` entry points."""
