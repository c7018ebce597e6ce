//! Helpers shared by the integration tests: `mod support;` in a test file, then
//! `support::journal::...` and so on. Each test file uses only some of them.

#![allow(dead_code)]

#[cfg(unix)]
pub mod child;
pub mod journal;
pub mod published;
#[cfg(unix)]
pub mod rlimit;
