//! One integration-test binary (one link step): each module covers an area.

mod bodies;
mod bottleneck;
mod check;
mod cli;
mod connections;
mod diagnosis;
mod distributed;
mod feeder;
mod floors;
mod gate;
mod hashfit;
mod html;
mod http2;
mod load;
mod metrics;
mod outage;
mod report;
mod run;
mod scenario;
mod server;
mod session;
mod stream;
mod support;
mod sweep;
mod tls;
mod truth;
