//! libkeepalive's pure core: everything the library, the `keepalive`
//! command and the kernel-side mode decide, with no hooks and no I/O beyond
//! what is passed in (the environment comes in as a lookup closure, what
//! the kernel said as values).
//!
//! Dependencies run one way: `variables`, `quantity`, `timers` and
//! `address` depend on nothing of ours; `settings` and `diagnostic` on
//! those; `rules` on them; `load` reads the variables into all of it;
//! `options` -> `plan` -> `policy` turn settings into socket options;
//! `fd_state` and `lifecycle` decide what happens to each descriptor.

#![deny(missing_docs)]

pub mod address;
pub mod classify;
pub mod diagnostic;
pub mod endpoint;
pub mod fd_state;
pub mod lifecycle;
pub mod load;
pub mod near_miss;
pub mod options;
pub mod plan;
pub mod policy;
pub mod presets;
pub mod programs;
pub mod quantity;
pub mod rules;
pub mod settings;
#[cfg(test)]
mod test_inputs;
pub mod timers;
pub mod variables;
