"""Per-benchmark scoring: judged or checked items -> ItemRecord values and BenchmarkResult."""
