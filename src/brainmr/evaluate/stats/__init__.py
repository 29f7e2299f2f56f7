"""Statistics: intervals, tests, a binary classifier's figures, ratios and balance checks.
Import from the submodules."""
