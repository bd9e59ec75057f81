//! libkeepalive's pure core: everything the library, the `keepalive`
//! command and the kernel-side mode decide, with no hooks and no I/O beyond
//! what is passed in (the environment comes in as a lookup closure, probe
//! results as values).

pub mod classify;
pub mod config;
pub mod endpoint;
pub mod fd_state;
pub mod plan;
pub mod policy;
pub mod presets;
pub mod programs;
pub mod rules;
