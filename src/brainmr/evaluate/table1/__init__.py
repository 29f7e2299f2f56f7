"""Table 1 across replicate seeds: per-seed rows, the summary, the morphometric differences and
the findings' evidence. Import from the submodules."""
