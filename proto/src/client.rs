//! Client-side helpers.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Error, Uri};

/// Placeholder URI for Unix-socket channels: the connector ignores it, but
/// tonic needs one (it also becomes the HTTP/2 `:authority`).
const UNIX_ENDPOINT_URI: &str = "http://localhost";

/// Connects a tonic [`Channel`] to a gRPC server listening on the Unix domain
/// socket at `path`.
///
/// The first connection is made eagerly, so a missing socket or a refused
/// connection is reported here; later reconnections reopen the same path.
/// Must be called within a tokio runtime.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use proto::vrouter::v1::{vrouter_client::VrouterClient, CapabilitiesRequest};
///
/// let channel = proto::connect_unix("/run/vrouter/vrouter.sock").await?;
/// let mut client = VrouterClient::new(channel);
/// let caps = client.capabilities(CapabilitiesRequest {}).await?.into_inner();
/// println!("api {}", caps.api_version);
/// # Ok(())
/// # }
/// ```
pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Channel, Error> {
    let path: PathBuf = path.as_ref().to_owned();
    Endpoint::from_static(UNIX_ENDPOINT_URI)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
}
