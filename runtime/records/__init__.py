"""Run records read back: summaries of runs/<run_id>/, the run folder store (list, find, gc), the
DAG picture (layered layout, SVG) and the self-contained HTML report. Imports from the runtime
only its contract and the names of the record files, so the compiler's commands may use it."""
