use tokio::net::TcpListener;
use tokio::sync::watch;
use uuid::Uuid;

use super::*;
use crate::hub::{ClientId, NoRegions, test_hub};
use crate::web::connection::tests::limits;
use crate::web::serve::Slot;

/// An idle tab is mostly its stream's task: at 10,000 tabs each byte here is 10 KB of RSS
/// (BENCHMARKS.md, idle memory).
#[tokio::test]
async fn a_streams_task_is_no_larger_than_a_parked_stream_needs() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let hub = test_hub();
    let live = hub.stream(ClientId(Uuid::new_v4()), None, Arc::new(NoRegions));
    let (_stop, stop) = watch::channel(None);
    let task = serve(
        tcp,
        Vec::new(),
        Box::new(live),
        limits().send_timeout,
        stop,
        Slot::detached(),
    );
    let size = std::mem::size_of_val(&task);
    assert!(size <= 1024, "{size} bytes");
}
