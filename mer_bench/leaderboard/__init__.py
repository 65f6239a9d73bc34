"""Static leaderboard sites built from result files: `mer-bench leaderboard build RESULTS... --out SITE`.

Modules, in the order data flows through them: `boards` (results -> boards -> groups over seeds), `selections`
(selection files -> the rows they chose, tuned on validation), `columns` (what each table column reads from a run),
`paired` (per-sample paired tests), `ranking` (cells, best and ties), `reported` (published numbers), `views` /
`modelpage` / `evidence` (display strings), `render` (templates), `downloads` (JSON and CSV), `site` (the build).
"""

from mer_bench.leaderboard.site import BuildReport, build_site, render_site

__all__ = ["BuildReport", "build_site", "render_site"]
