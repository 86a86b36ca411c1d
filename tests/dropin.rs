//! `maxlisten::bind` is a drop-in for `std::net::TcpListener::bind`: the call patterns of real
//! code compile with both (each pattern below is instantiated once with std's function and once
//! with ours), and every bad input gets std's `ErrorKind`, with the address named in the message
//! and the detailed error inside.

use std::error::Error as StdError;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, ToSocketAddrs};
use std::vec;

#[cfg(target_os = "linux")]
mod common;

/// An address type of the caller's own, with no `Debug`.
struct NoDebug(SocketAddr);

impl ToSocketAddrs for NoDebug {
    type Iter = vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        Ok(vec![self.0].into_iter())
    }
}

/// Real call patterns of `TcpListener::bind`, written once over `$bind`.
macro_rules! std_patterns {
    ($module:ident, $bind:path) => {
        mod $module {
            use super::*;

            /// A library function generic over the address, forwarding to bind.
            pub fn generic<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
                $bind(addr)
            }

            /// The same with `impl Trait`.
            pub fn with_impl(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
                $bind(addr)
            }

            /// bind as the tail expression of a function returning io::Result.
            pub fn tail() -> io::Result<TcpListener> {
                $bind("127.0.0.1:0")
            }

            /// `?` into a boxed error.
            pub fn boxed() -> Result<TcpListener, Box<dyn StdError + Send + Sync>> {
                Ok($bind(("127.0.0.1", 0))?)
            }

            pub fn all() -> io::Result<()> {
                // A typed binding.
                let r: io::Result<TcpListener> = $bind("127.0.0.1:0");
                r?;
                // An address type that is not Debug.
                generic(NoDebug(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))?;
                with_impl(String::from("127.0.0.1:0"))?;
                with_impl(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
                tail()?;
                boxed().map_err(io::Error::other)?;
                // Chained.
                let l = $bind("127.0.0.1:0").and_then(|l| l.set_nonblocking(true).map(|()| l))?;
                assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
                // Mapped over a list.
                let addrs = ["127.0.0.1:0", "127.0.0.1:0"];
                let ls = addrs.iter().map($bind).collect::<io::Result<Vec<_>>>()?;
                assert_eq!(ls.len(), 2);
                // As a function pointer (`for<'a> fn(&'a str)` is refused by std's too).
                let f: fn(&'static str) -> io::Result<TcpListener> = $bind;
                f("127.0.0.1:0")?;
                let g: fn(SocketAddr) -> io::Result<TcpListener> = $bind;
                g(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
                // On another thread: the error is Send.
                std::thread::spawn(|| $bind("127.0.0.1:0"))
                    .join()
                    .unwrap()?;
                // Inspecting an error.
                let taken = $bind("127.0.0.1:0")?;
                let err = $bind(taken.local_addr()?).unwrap_err();
                let _inner: Option<&(dyn StdError + Send + Sync + 'static)> = err.get_ref();
                assert_eq!(err.kind(), ErrorKind::AddrInUse);
                Ok(())
            }
        }
    };
}

std_patterns!(with_std, TcpListener::bind);
std_patterns!(with_maxlisten, maxlisten::bind);

#[test]
fn std_call_patterns_compile_and_run_with_both() {
    with_std::all().unwrap();
    with_maxlisten::all().unwrap();
}

/// One bad input: what to bind, and the address its message must name (`None` where the
/// failure is in resolution, which std does not name either).
struct Case {
    what: &'static str,
    input: Vec<SocketAddr>,
    text: Option<&'static str>,
    names: Option<String>,
}

fn check_same_as_std(case: &Case, std_err: io::Error, ours: io::Error) {
    let what = case.what;
    assert_eq!(
        ours.kind(),
        std_err.kind(),
        "{what}: {ours} vs std {std_err}"
    );
    if let Some(addr) = &case.names {
        assert!(ours.to_string().contains(addr), "{what}: {ours}");
    }
    // The documented difference: the OS code is on the inner error, where std has one.
    assert_eq!(ours.raw_os_error(), None, "{what}");
    let inner = ours
        .get_ref()
        .and_then(|e| e.downcast_ref::<maxlisten::Error>())
        .unwrap_or_else(|| panic!("{what}: no maxlisten::Error inside {ours:?}"));
    assert_eq!(inner.raw_os_error(), std_err.raw_os_error(), "{what}");
    assert_eq!(inner.kind(), std_err.kind(), "{what}");
}

/// The bad inputs of the table, with the listeners that keep their ports taken.
fn cases() -> (Vec<Case>, Vec<TcpListener>) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let off_host: SocketAddr = "192.0.2.1:0".parse().unwrap();
    let cases = vec![
        Case {
            what: "port in use",
            input: vec![a_addr],
            text: None,
            names: Some(a_addr.to_string()),
        },
        Case {
            what: "address not on this host",
            input: vec![off_host],
            text: None,
            names: Some(off_host.to_string()),
        },
        Case {
            what: "bad text",
            input: vec![],
            text: Some("not an address"),
            names: None,
        },
        Case {
            what: "no port",
            input: vec![],
            text: Some("127.0.0.1"),
            names: None,
        },
        Case {
            what: "bad port",
            input: vec![],
            text: Some("127.0.0.1:99999"),
            names: None,
        },
        Case {
            what: "empty list",
            input: vec![],
            text: None,
            names: None,
        },
        Case {
            what: "several failing addresses",
            input: vec![a_addr, off_host, b_addr],
            text: None,
            names: Some(b_addr.to_string()),
        },
    ];
    (cases, vec![a, b])
}

#[test]
fn every_bad_input_gets_std_kind_with_the_address_named() {
    let (cases, _taken) = cases();
    for case in &cases {
        let (std_err, ours) = match case.text {
            Some(text) => (
                TcpListener::bind(text).unwrap_err(),
                maxlisten::bind(text).unwrap_err(),
            ),
            None => (
                TcpListener::bind(&case.input[..]).unwrap_err(),
                maxlisten::bind(&case.input[..]).unwrap_err(),
            ),
        };
        check_same_as_std(case, std_err, ours);
    }
}

/// Linux only: it resolves inside a private network namespace, so no DNS query leaves the host.
#[cfg(target_os = "linux")]
#[test]
fn an_unresolvable_name_gets_std_kind() {
    let check = || {
        let text = "no-such-host.invalid:80";
        let std_err = TcpListener::bind(text).unwrap_err();
        let ours = maxlisten::bind(text).unwrap_err();
        assert_eq!(ours.kind(), std_err.kind());
        // The resolver's own words are kept.
        assert!(ours.to_string().ends_with(&std_err.to_string()), "{ours}");
    };
    // As root, inside a private network namespace, so that no DNS query leaves the machine.
    if common::is_root() {
        common::in_netns(4096, check);
    } else {
        check();
    }
}

#[cfg(feature = "tokio")]
mod tokio_dropin {
    use std::future::Future;
    use std::pin::Pin;

    use tokio::net::TcpListener;

    use super::*;

    type Bound = Pin<Box<dyn Future<Output = io::Result<TcpListener>> + Send>>;

    /// Real call patterns of tokio's `TcpListener::bind`, written once over `$bind`.
    macro_rules! tokio_patterns {
        ($module:ident, $bind:path) => {
            mod $module {
                use super::*;

                /// Generic over tokio's address trait, forwarding to bind.
                pub async fn generic<A: tokio::net::ToSocketAddrs>(
                    addr: A,
                ) -> io::Result<TcpListener> {
                    $bind(addr).await
                }

                /// The future is Send, so it can be boxed for a trait object or spawned.
                pub fn boxed(addr: String) -> Bound {
                    Box::pin($bind(addr))
                }

                pub async fn all() -> io::Result<()> {
                    let r: io::Result<TcpListener> = $bind("127.0.0.1:0").await;
                    r?;
                    generic("localhost:0").await?;
                    generic(String::from("127.0.0.1:0")).await?;
                    generic((Ipv4Addr::LOCALHOST, 0)).await?;
                    generic(("127.0.0.1", 0)).await?;
                    generic(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
                    generic(&[SocketAddr::from((Ipv4Addr::LOCALHOST, 0))][..]).await?;
                    boxed("127.0.0.1:0".into()).await?;
                    tokio::spawn($bind("127.0.0.1:0")).await.unwrap()?;
                    let taken = $bind("127.0.0.1:0").await?;
                    let err = $bind(taken.local_addr()?).await.unwrap_err();
                    assert!(err.get_ref().is_some() || err.raw_os_error().is_some());
                    assert_eq!(err.kind(), ErrorKind::AddrInUse);
                    Ok(())
                }
            }
        };
    }

    tokio_patterns!(with_tokio, TcpListener::bind);
    tokio_patterns!(with_maxlisten, maxlisten::tokio::bind);

    #[tokio::test]
    async fn tokio_call_patterns_compile_and_run_with_both() {
        with_tokio::all().await.unwrap();
        with_maxlisten::all().await.unwrap();
    }

    #[tokio::test]
    async fn every_bad_input_gets_tokio_kind_with_the_address_named() {
        let (cases, _taken) = cases();
        for case in &cases {
            let (theirs, ours) = match case.text {
                Some(text) => (
                    TcpListener::bind(text).await.unwrap_err(),
                    maxlisten::tokio::bind(text).await.unwrap_err(),
                ),
                None => (
                    TcpListener::bind(&case.input[..]).await.unwrap_err(),
                    maxlisten::tokio::bind(&case.input[..]).await.unwrap_err(),
                ),
            };
            check_same_as_std(case, theirs, ours);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_unresolvable_name_gets_tokio_kind() {
        let check = || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let text = "no-such-host.invalid:80";
                let theirs = TcpListener::bind(text).await.unwrap_err();
                let ours = maxlisten::tokio::bind(text).await.unwrap_err();
                assert_eq!(ours.kind(), theirs.kind());
                assert!(ours.to_string().ends_with(&theirs.to_string()), "{ours}");
            });
        };
        if common::is_root() {
            common::in_netns(4096, check);
        } else {
            check();
        }
    }

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        let err = smol::block_on(maxlisten::tokio::bind("127.0.0.1:0")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other);
        let inner = err.get_ref().unwrap().downcast_ref::<maxlisten::Error>();
        assert!(
            matches!(inner, Some(maxlisten::Error::Register { .. })),
            "{err:?}"
        );
        let err = maxlisten::ListenerBuilder::new()
            .bind("127.0.0.1:0")
            .unwrap()
            .into_tokio()
            .unwrap_err();
        assert!(matches!(err, maxlisten::Error::Register { .. }), "{err:?}");
    }

    /// Documented: a runtime without the IO driver panics, as tokio's own `bind` and
    /// `from_std` do.
    #[test]
    fn a_runtime_without_io_panics_as_documented() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ours = std::panic::catch_unwind(|| {
            rt.block_on(maxlisten::tokio::bind("127.0.0.1:0")).ok();
        });
        assert!(ours.is_err(), "maxlisten::tokio::bind did not panic");
        let theirs = std::panic::catch_unwind(|| {
            rt.block_on(TcpListener::bind("127.0.0.1:0")).ok();
        });
        assert!(theirs.is_err(), "tokio's bind did not panic either");
        let converted = std::panic::catch_unwind(|| {
            let _guard = rt.enter();
            maxlisten::ListenerBuilder::new()
                .bind("127.0.0.1:0")
                .unwrap()
                .into_tokio()
                .ok();
        });
        assert!(converted.is_err(), "into_tokio did not panic");
    }
}
