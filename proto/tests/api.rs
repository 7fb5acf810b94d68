//! Tests of the generated control API: message encoding, the descriptor set
//! and a real gRPC round trip over a Unix domain socket.

use std::error::Error;

use prost::Message;
use proto::vrouter::v1::{
    DriverCounter, DropCounter, GetCountersResponse, NatCounters, PagePoolCounters, PortCounters, QueueCounters,
    WorkerCounters,
};

type TestResult = Result<(), Box<dyn Error>>;

/// A counters snapshot with every level of nesting populated.
fn sample_counters() -> GetCountersResponse {
    GetCountersResponse {
        nat: Some(NatCounters {
            live_sessions: 5,
            capacity: 1024,
            bytes_per_session: 100,
            counters: vec![DriverCounter { name: "sessions_created".into(), value: 7, drop: false }],
        }),
        ports: vec![
            PortCounters {
                name: "eth0".into(),
                driver: "af_packet".into(),
                link_up: true,
                mac: "02:00:00:00:00:01".into(),
                mtu: 1500,
                queues: vec![
                    QueueCounters {
                        queue_id: 0,
                        rx_packets: 10,
                        rx_bytes: 15_000,
                        tx_packets: 9,
                        tx_bytes: 13_500,
                        rx_drops: 1,
                        tx_drops: 2,
                        page_pool: Some(PagePoolCounters {
                            fast_alloc: 100,
                            slow_alloc: 3,
                            recycle_direct: 90,
                            recycle_ring: 7,
                            empty: 0,
                            in_use: 6,
                            size: 4096,
                        }),
                        driver: vec![
                            DriverCounter { name: "rx.truncated".into(), value: 1, drop: true },
                            DriverCounter { name: "rx.cqe_coalesced_4".into(), value: 3, drop: false },
                        ],
                    },
                    QueueCounters { queue_id: 1, rx_packets: u64::MAX, page_pool: None, ..Default::default() },
                ],
            },
            PortCounters { name: "tap0".into(), driver: "tap".into(), link_up: false, ..Default::default() },
        ],
        workers: vec![
            WorkerCounters {
                id: 0,
                core: Some(2),
                rx_packets: 10,
                tx_packets: 9,
                busy_cycles: 123_456_789,
                drops: vec![
                    DropCounter { reason: "no_route".into(), count: 1 },
                    DropCounter { reason: "ttl_exceeded".into(), count: 4 },
                ],
            },
            WorkerCounters { id: 1, core: None, ..Default::default() },
        ],
        timestamp_unix_nanos: 1_700_000_000_000_000_000,
    }
}

#[test]
fn get_counters_response_round_trips() -> TestResult {
    let original = sample_counters();
    let bytes = original.encode_to_vec();
    let decoded = GetCountersResponse::decode(bytes.as_slice())?;
    assert_eq!(decoded, original);
    // Presence of message and `optional` fields survives the round trip.
    assert!(decoded.ports[0].queues[0].page_pool.is_some());
    assert!(decoded.ports[0].queues[1].page_pool.is_none());
    assert_eq!(decoded.workers[0].core, Some(2));
    assert_eq!(decoded.workers[1].core, None);
    // A pinned core 0 is distinguishable from "not pinned".
    let pinned_to_zero = WorkerCounters { core: Some(0), ..Default::default() };
    let decoded = WorkerCounters::decode(pinned_to_zero.encode_to_vec().as_slice())?;
    assert_eq!(decoded.core, Some(0));
    Ok(())
}

#[test]
fn descriptor_set_describes_the_service() -> TestResult {
    let fds = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)?;
    let names: Vec<&str> = fds.file.iter().map(|f| f.name()).collect();
    // Imports are included, so reflection can resolve every type.
    for expected in ["vrouter/v1/vrouter.proto", "google/rpc/status.proto", "google/protobuf/any.proto"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }

    let file = fds.file.iter().find(|f| f.package() == "vrouter.v1").ok_or("no vrouter.v1 file")?;
    let service = file
        .service
        .iter()
        .find(|s| format!("{}.{}", file.package(), s.name()) == "vrouter.v1.Vrouter")
        .ok_or("no vrouter.v1.Vrouter service")?;
    assert_eq!(format!("{}.{}", file.package(), service.name()), proto::SERVICE_NAME);
    let methods: Vec<(&str, &str, &str)> =
        service.method.iter().map(|m| (m.name(), m.input_type(), m.output_type())).collect();
    assert_eq!(
        methods,
        [
            ("Capabilities", ".vrouter.v1.CapabilitiesRequest", ".vrouter.v1.CapabilitiesResponse"),
            ("GetCounters", ".vrouter.v1.GetCountersRequest", ".vrouter.v1.GetCountersResponse"),
            ("ListPorts", ".vrouter.v1.ListPortsRequest", ".vrouter.v1.ListPortsResponse"),
        ]
    );
    // Source info (comments) is kept for reflection clients.
    assert!(file.source_code_info.is_some());
    Ok(())
}

#[test]
fn api_version_is_semver_like() {
    let (core, pre) = proto::API_VERSION.split_once('-').unwrap_or((proto::API_VERSION, ""));
    assert_eq!(core.split('.').count(), 3);
    assert!(core.split('.').all(|n| n.parse::<u64>().is_ok()));
    assert_eq!(pre, "alpha");
}

#[cfg(all(unix, feature = "client"))]
mod unix_grpc {
    use super::{sample_counters, TestResult};

    use proto::vrouter::v1::vrouter_client::VrouterClient;
    use proto::vrouter::v1::vrouter_server::{Vrouter, VrouterServer};
    use proto::vrouter::v1::{
        CapabilitiesRequest, CapabilitiesResponse, GetCountersRequest, GetCountersResponse, ListPortsRequest,
        ListPortsResponse, PortInfo,
    };
    use tokio::net::UnixListener;
    use tokio::sync::oneshot;
    use tokio_stream::wrappers::UnixListenerStream;
    use tonic::{Request, Response, Status};
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    /// A fake daemon answering with fixed data.
    struct FakeDaemon;

    fn capabilities() -> CapabilitiesResponse {
        CapabilitiesResponse {
            api_version: proto::API_VERSION.into(),
            daemon_version: "9.8.7-test".into(),
            port_drivers: vec!["af_packet".into(), "tap".into()],
            features: vec!["counters".into(), "page_pool".into()],
        }
    }

    #[tonic::async_trait]
    impl Vrouter for FakeDaemon {
        async fn capabilities(
            &self,
            _request: Request<CapabilitiesRequest>,
        ) -> Result<Response<CapabilitiesResponse>, Status> {
            Ok(Response::new(capabilities()))
        }

        async fn get_counters(
            &self,
            request: Request<GetCountersRequest>,
        ) -> Result<Response<GetCountersResponse>, Status> {
            let mut counters = sample_counters();
            let wanted = request.into_inner().ports;
            if let Some(unknown) = wanted.iter().find(|w| !counters.ports.iter().any(|p| &p.name == *w)) {
                return Err(Status::not_found(format!("no port {unknown}")));
            }
            if !wanted.is_empty() {
                counters.ports.retain(|p| wanted.contains(&p.name));
            }
            Ok(Response::new(counters))
        }

        async fn list_ports(&self, _request: Request<ListPortsRequest>) -> Result<Response<ListPortsResponse>, Status> {
            Ok(Response::new(ListPortsResponse {
                ports: vec![PortInfo {
                    name: "eth0".into(),
                    driver: "af_packet".into(),
                    link_up: true,
                    mac: "02:00:00:00:00:01".into(),
                    mtu: 1500,
                    rx_queues: 2,
                    tx_queues: 2,
                }],
            }))
        }
    }

    #[tokio::test]
    async fn grpc_over_unix_socket() -> TestResult {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("vrouter.sock");
        let listener = UnixListener::bind(&socket)?;

        // The health service from tonic-health lives next to ours.
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<VrouterServer<FakeDaemon>>().await;

        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health_service)
                .add_service(VrouterServer::new(FakeDaemon))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                    let _ = stop_rx.await;
                }),
        );

        let channel = proto::connect_unix(&socket).await?;
        let mut client = VrouterClient::new(channel.clone());

        let caps = client.capabilities(CapabilitiesRequest {}).await?.into_inner();
        assert_eq!(caps, capabilities());
        assert_eq!(caps.api_version, "1.0.0-alpha");

        let counters = client.get_counters(GetCountersRequest { ports: vec![] }).await?.into_inner();
        assert_eq!(counters, sample_counters());

        let only_tap = client.get_counters(GetCountersRequest { ports: vec!["tap0".into()] }).await?.into_inner();
        assert_eq!(only_tap.ports.len(), 1);
        assert_eq!(only_tap.ports[0].name, "tap0");

        let err = client
            .get_counters(GetCountersRequest { ports: vec!["nope".into()] })
            .await
            .err()
            .ok_or("unknown port accepted")?;
        assert_eq!(err.code(), tonic::Code::NotFound);

        let ports = client.list_ports(ListPortsRequest {}).await?.into_inner();
        assert_eq!(ports.ports.len(), 1);
        assert_eq!(ports.ports[0].rx_queues, 2);

        let health = HealthClient::new(channel)
            .check(HealthCheckRequest { service: proto::SERVICE_NAME.into() })
            .await?
            .into_inner();
        assert_eq!(health.status(), ServingStatus::Serving);

        drop(client);
        let _ = stop_tx.send(());
        server.await??;
        Ok(())
    }

    #[test]
    fn generated_tcp_connect_exists() {
        // With the `client` feature the generator also emits the usual
        // `VrouterClient::connect(uri)` for TCP endpoints.
        let _connect = VrouterClient::<tonic::transport::Channel>::connect::<&'static str>;
    }

    #[tokio::test]
    async fn connect_unix_reports_missing_socket() -> TestResult {
        let dir = tempfile::tempdir()?;
        let result = proto::connect_unix(dir.path().join("absent.sock")).await;
        assert!(result.is_err());
        Ok(())
    }
}
