"""The self-contained HTML report of a run, its analysis tables and figures."""
