"""Reports for reviewers: plots, terminal tables and self-contained HTML."""
