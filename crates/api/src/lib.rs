#![forbid(unsafe_code)]
pub mod v1 {
    tonic::include_proto!("rollcall.v1");
}
