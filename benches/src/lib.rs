//! Benchmarks and load generators for Sotto's hot paths. The benchmarks live in `benches/`;
//! this library holds what they share.
