//! One integration-test binary (one link step): each module covers an area.

mod check;
mod gate;
mod report;
mod run;
mod scenario;
mod server;
mod support;
