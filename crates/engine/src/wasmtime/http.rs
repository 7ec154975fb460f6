//! `wasi:http/outgoing-handler` for components, held to the container's
//! grant: the destination is resolved (where lookups are allowed), each of
//! its addresses checked as a connect by the container's [`Egress`], and
//! the request sent over a connection to the address that was checked.
//!
//! Written here rather than taken from wasmtime-wasi-http's default sender,
//! which connects by name: it would resolve the name again after the check,
//! and a resolver that answers differently the second time (DNS rebinding)
//! would take the request somewhere the policy never allowed. The steps
//! follow that sender (wasmtime-wasi-http 48, `default_send_request`):
//! connect with a timeout, TLS for `https` (rustls, the webpki roots),
//! hyper's HTTP/1.1 client, the path alone on the request line.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::uri::Scheme;
use http_body_util::BodyExt;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::network::Egress;

/// What a response comes with: the future that drives its connection.
type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// The hooks a component's `wasi:http` runs with.
pub struct EgressHooks {
    pub egress: Arc<Egress>,
}

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Io,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Io), Error>> + Send> {
        let egress = self.egress.clone();
        Box::new(async move {
            let destination = Destination::of(request.uri())?;
            let address = destination.checked_address(&egress).await?;
            send(&destination, address, request, options).await
        })
    }
}

/// Where a request goes, from its URI.
struct Destination {
    host: String,
    port: u16,
    tls: bool,
}

impl Destination {
    fn of(uri: &http::Uri) -> Result<Self, Error> {
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let tls = uri.scheme() == Some(&Scheme::HTTPS);
        let host = authority.host();
        // An IPv6 literal comes in brackets.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Ok(Self {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            tls,
        })
    }

    /// The first of the destination's addresses the container may connect
    /// to: every refused one is said and reported as a refused connect.
    async fn checked_address(&self, egress: &Egress) -> Result<SocketAddr, Error> {
        let candidates: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) if !egress.allows_name_lookup() => {
                return Err(Error::DnsError {
                    rcode: Some("REFUSED".into()),
                    info_code: None,
                });
            }
            Err(_) => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|_| Error::DestinationNotFound)?
                .collect(),
        };
        if candidates.is_empty() {
            return Err(Error::DestinationNotFound);
        }
        candidates
            .into_iter()
            .find(|address| egress.allows(*address, SocketAddrUse::TcpConnect))
            .ok_or(Error::DestinationIpProhibited)
    }
}

/// The timeouts wasmtime-wasi-http's own sender defaults to.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

async fn send(
    destination: &Destination,
    address: SocketAddr,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, Io), Error> {
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let tcp = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(address))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    // The request line carries the path alone (not through a proxy).
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
    if destination.tls {
        let tls = tls_connect(destination, tcp).await?;
        exchange(
            TokioIo::new(tls),
            request,
            connect_timeout,
            first_byte_timeout,
        )
        .await
    } else {
        exchange(
            TokioIo::new(tcp),
            request,
            connect_timeout,
            first_byte_timeout,
        )
        .await
    }
}

async fn tls_connect(
    destination: &Destination,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| Error::TlsProtocolError)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(destination.host.clone())
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(Error::Tls)
}

async fn exchange<S>(
    stream: TokioIo<S>,
    request: http::Request<WasiBody>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
) -> Result<(http::Response<WasiBody>, Io), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(stream),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)?
    .map_err(Error::from)?;
    // The response arrives only while the connection is driven: both are
    // polled until it does; whoever reads the body drives the rest.
    let mut connection = Box::pin(connection);
    let mut ended = false;
    let response = tokio::time::timeout(first_byte_timeout, async {
        let send = sender.send_request(request);
        tokio::pin!(send);
        loop {
            tokio::select! {
                response = &mut send => break response.map_err(Error::from),
                result = &mut connection, if !ended => {
                    ended = true;
                    if let Err(e) = result {
                        break Err(Error::from(e));
                    }
                }
            }
        }
    })
    .await
    .map_err(|_| Error::ConnectionReadTimeout)??;
    let io: Io = Box::new(async move {
        if ended {
            return Ok(());
        }
        connection.await.map_err(Error::from)
    });
    Ok((
        response.map(|body| body.map_err(Error::from).boxed_unsync()),
        io,
    ))
}
