//! libkeepalive: an `LD_PRELOAD` library that turns on TCP keepalive in
//! programs that cannot be modified. See README.md for usage.
//!
//! A thin shell over the pure core (`keepalive_core`: variables, rules,
//! plan, policy, the socket lifecycle): `hooks` (the C symbols) call
//! `actions` (what each hook does), which perform the core's steps with
//! `sockopt` (system calls, errno), `endpoint` (sockaddr reading) and
//! `fd_table` (what we know per descriptor). Around them: `diagnostics`
//! (safe stderr lines), `runtime` (load once), `scope` (which program),
//! `cancel` (the program's pthread_cancel kept out of our own calls).

pub mod actions;
mod cancel;
pub mod diagnostics;
pub mod endpoint;
mod environment;
pub mod fd_table;
mod lineage;
#[cfg(not(test))]
mod real;
pub mod runtime;
pub mod scope;
pub mod sockopt;

#[cfg(not(test))]
mod hooks;
