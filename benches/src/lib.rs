//! Benchmarks and load generators for Sotto's hot paths. The criterion benchmarks live in
//! `benches/`; the relay load generator is the `relay-load` binary; this library holds what they
//! share.

pub mod cpu;
pub mod latency;
pub mod load_client;
pub mod udp_forwarder;
