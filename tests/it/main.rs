//! One integration-test binary (one link step): each module covers an area.

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
mod outage;
mod report;
mod run;
mod scenario;
mod server;
mod session;
mod support;
mod sweep;
mod tls;
mod truth;
