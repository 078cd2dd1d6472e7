"""The benchmark harness: `bankstream run`, verification, reports, `compare`, `merge`."""
