//! libkeepalive: an `LD_PRELOAD` library that turns on TCP keepalive in
//! programs that cannot be modified. See README.md for usage.
//!
//! Pure, unit-tested logic: `config` (variables, parsing, validation),
//! `rules` (which connections, with which timers: grammar and matching),
//! `plan` (the options to set), `policy` (a plan per rule), `endpoint`
//! (addresses in a sockaddr), `classify` (which sockets and options are
//! ours), `fd_table` (what we know per descriptor). Around it: `sockopt`
//! (system calls, errno), `diagnostics` (safe stderr lines), `runtime`
//! (load once), `actions` (what each hook does) and `hooks` (the C symbols).

pub mod actions;
pub mod classify;
pub mod config;
pub mod diagnostics;
pub mod endpoint;
pub mod fd_state;
pub mod fd_table;
mod lineage;
pub mod plan;
pub mod policy;
pub mod presets;
pub mod programs;
#[cfg(not(test))]
mod real;
pub mod rules;
pub mod runtime;
pub mod scope;
pub mod sockopt;

#[cfg(not(test))]
mod hooks;
// Only the cdylib is linked with build.rs's --wrap options.
#[cfg(not(test))]
mod lazy_imports;
