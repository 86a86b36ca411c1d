//! Which container a process belongs to, from its cgroup path (Linux).
//!
//! Container runtimes name the cgroup of each container after its id, and the kubelet names
//! the cgroup of each pod after the pod's UID, so `/proc/PID/cgroup` answers "which container is
//! this" without asking any runtime:
//!
//! | runtime | cgroup v2 with systemd (and v1 / cgroupfs) |
//! |---|---|
//! | Docker | `/system.slice/docker-<64 hex>.scope` (`/docker/<64 hex>`) |
//! | containerd (Kubernetes) | `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<64 hex>.scope` |
//! | CRI-O | `.../kubepods-pod<uid>.slice/crio-<64 hex>.scope` |
//! | Podman | `/machine.slice/libpod-<64 hex>.scope` (`/libpod_parent/libpod-<64 hex>`) |
//! | Kubernetes, cgroupfs driver | `/kubepods/burstable/pod<uid>/<64 hex>` (the runtime is not named) |
//!
//! With the systemd driver the pod UID's `-` are written `_`; they are turned back. The
//! monitors that run beside a container (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`)
//! are not the container and get none. Nested containers (Docker in Docker) give the innermost.
//!
//! ```
//! use maxlisten::container::{Container, Runtime};
//!
//! let path = "/system.slice/docker-4c2dd7b9c5a8e4f3b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4.scope";
//! let c = Container::from_cgroup(path).unwrap();
//! assert_eq!(c.runtime, Runtime::Docker);
//! assert_eq!(c.short_id(), "4c2dd7b9c5a8"); // as `docker ps` shows it
//! assert_eq!(c.pod, None);
//! assert_eq!(Container::from_cgroup("/user.slice/user-1000.slice/session-2.scope"), None);
//! ```

use std::fmt;

/// The runtime that named a container's cgroup.
///
/// ```
/// assert_eq!(maxlisten::container::Runtime::CriO.to_string(), "cri-o");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// Docker (`docker-<id>.scope`, `/docker/<id>`).
    Docker,
    /// containerd's CRI plugin, as Kubernetes uses it (`cri-containerd-<id>.scope`).
    Containerd,
    /// CRI-O (`crio-<id>.scope`).
    CriO,
    /// Podman (`libpod-<id>.scope`).
    Podman,
    /// A Kubernetes container whose cgroup does not name the runtime (the kubelet's cgroupfs
    /// driver: `/kubepods/<class>/pod<uid>/<id>`).
    Unnamed,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Unnamed => "unnamed",
        })
    }
}

/// A container, as its cgroup path names it.
///
/// ```
/// let path = "/kubepods.slice/kubepods-besteffort.slice/\
///     kubepods-besteffort-pod5f0c7a1e_2b3d_4c5e_8f90_a1b2c3d4e5f6.slice/\
///     cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
/// let c = maxlisten::container::Container::from_cgroup(path).unwrap();
/// assert_eq!(c.pod.as_deref(), Some("5f0c7a1e-2b3d-4c5e-8f90-a1b2c3d4e5f6"));
/// assert_eq!(c.id.len(), 64);
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Container {
    /// Which runtime named the cgroup.
    pub runtime: Runtime,
    /// The container's full id (64 hex digits).
    pub id: String,
    /// The Kubernetes pod's UID (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`), for a container of a pod.
    pub pod: Option<String>,
}

impl Container {
    /// The container named by a cgroup path (`/proc/PID/cgroup` without the `0::` prefix), or
    /// `None` when the path names no container. See the [module](self) for the shapes.
    ///
    /// ```
    /// use maxlisten::container::{Container, Runtime};
    /// let podman = "/machine.slice/libpod-9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.scope/container";
    /// assert_eq!(Container::from_cgroup(podman).unwrap().runtime, Runtime::Podman);
    /// ```
    pub fn from_cgroup(path: &str) -> Option<Container> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let kubernetes = parts.iter().any(|p| p.starts_with("kubepods"));
        // The innermost component that names a container.
        let (index, runtime, id) = parts.iter().enumerate().rev().find_map(|(i, part)| {
            let previous = i.checked_sub(1).map(|j| parts[j]);
            container_part(part, previous, kubernetes).map(|(runtime, id)| (i, runtime, id))
        })?;
        let pod = if kubernetes {
            parts[..index].iter().rev().find_map(|part| pod_uid(part))
        } else {
            None
        };
        Some(Container {
            runtime,
            id: id.to_owned(),
            pod,
        })
    }

    /// The container named by the text of `/proc/PID/cgroup`: the cgroup v2 line (`0::PATH`),
    /// or on cgroup v1 the first hierarchy whose path names a container.
    ///
    /// ```
    /// let text = "12:pids:/docker/4c2dd7b9c5a8e4f3b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4\n\
    ///             1:name=systemd:/docker/4c2dd7b9c5a8e4f3b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4\n";
    /// let c = maxlisten::container::Container::from_proc_cgroup(text).unwrap();
    /// assert_eq!(c.short_id(), "4c2dd7b9c5a8");
    /// ```
    pub fn from_proc_cgroup(text: &str) -> Option<Container> {
        cgroup_paths(text).find_map(Container::from_cgroup)
    }

    /// The first 12 hex digits of the id, as `docker ps`, `podman ps` and `crictl ps` show it.
    ///
    /// ```
    /// let c = maxlisten::container::Container::from_cgroup(
    ///     "/system.slice/crio-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
    /// ).unwrap();
    /// assert_eq!(c.short_id(), "0123456789ab");
    /// ```
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }
}

/// The cgroup path a person would call the process's cgroup, from the text of
/// `/proc/PID/cgroup`: the cgroup v2 line (`0::PATH`) where there is one, else the first
/// hierarchy's; `None` for empty text.
///
/// ```
/// assert_eq!(
///     maxlisten::container::cgroup_path("0::/system.slice/nginx.service\n").as_deref(),
///     Some("/system.slice/nginx.service"),
/// );
/// ```
pub fn cgroup_path(text: &str) -> Option<String> {
    let v2 = text.lines().find_map(|line| line.strip_prefix("0::"));
    // On v1 or hybrid systems, a container is named in every hierarchy; prefer one that names it.
    let named = cgroup_paths(text).find(|path| Container::from_cgroup(path).is_some());
    v2.filter(|path| named.is_none() || Container::from_cgroup(path).is_some())
        .or(named)
        .or_else(|| cgroup_paths(text).next())
        .map(str::to_owned)
}

/// Every path of the text of `/proc/PID/cgroup` (`ID:CONTROLLERS:PATH` lines), v2 first.
fn cgroup_paths(text: &str) -> impl Iterator<Item = &str> {
    let v2 = text.lines().filter_map(|line| line.strip_prefix("0::"));
    let v1 = text
        .lines()
        .filter(|line| !line.starts_with("0::"))
        .filter_map(|line| line.splitn(3, ':').nth(2));
    v2.chain(v1).filter(|path| !path.is_empty())
}

/// The runtime and id a cgroup path component names, if it names a container.
fn container_part<'a>(
    part: &'a str,
    previous: Option<&str>,
    kubernetes: bool,
) -> Option<(Runtime, &'a str)> {
    const SCOPES: [(&str, Runtime); 4] = [
        ("cri-containerd-", Runtime::Containerd),
        ("docker-", Runtime::Docker),
        ("crio-", Runtime::CriO),
        ("libpod-", Runtime::Podman),
    ];
    let stem = part.strip_suffix(".scope").unwrap_or(part);
    for (prefix, runtime) in SCOPES {
        if let Some(id) = stem.strip_prefix(prefix).filter(|id| is_id(id)) {
            return Some((runtime, id));
        }
    }
    // A bare id: `/docker/<id>` (cgroup v1 or Docker's cgroupfs driver), or a pod's container
    // with the kubelet's cgroupfs driver (`/kubepods/<class>/pod<uid>/<id>`).
    if is_id(part) {
        match previous {
            Some("docker") => return Some((Runtime::Docker, part)),
            Some(p) if kubernetes && pod_uid(p).is_some() => return Some((Runtime::Unnamed, part)),
            _ => {}
        }
    }
    None
}

/// A container id: 64 lowercase hex digits.
fn is_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The pod UID a cgroup path component names: `kubepods-<class>-pod<uid with _>.slice` (systemd
/// driver) or `pod<uid>` (cgroupfs driver).
fn pod_uid(part: &str) -> Option<String> {
    let stem = part.strip_suffix(".slice").unwrap_or(part);
    let at = stem.rfind("pod")?;
    let uid = stem[at + 3..].replace('_', "-");
    let groups: Vec<&str> = uid.split('-').collect();
    let shape = [8, 4, 4, 4, 12];
    let valid = groups.len() == shape.len()
        && groups
            .iter()
            .zip(shape)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    // The part before `pod` is a kubepods slice (systemd), or nothing (cgroupfs).
    let before = &stem[..at];
    (valid && (before.is_empty() || before.starts_with("kubepods"))).then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8a3f2c1b0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a";
    const UID: &str = "0d7e3c52-8a1b-4f6e-9c2d-3b4a5f6e7d8c";

    fn container(path: &str) -> Option<(Runtime, String, Option<String>)> {
        Container::from_cgroup(path).map(|c| (c.runtime, c.id, c.pod))
    }

    #[test]
    fn docker() {
        let expect = Some((Runtime::Docker, ID.to_owned(), None));
        assert_eq!(
            container(&format!("/system.slice/docker-{ID}.scope")),
            expect
        );
        assert_eq!(container(&format!("/docker/{ID}")), expect);
        // Docker in Docker: the innermost.
        let inner = ID.replace('8', "9");
        assert_eq!(
            container(&format!("/docker/{ID}/docker/{inner}")),
            Some((Runtime::Docker, inner, None))
        );
        // Not an id: too short, upper case.
        assert_eq!(container("/docker/abc123"), None);
        assert_eq!(container(&format!("/docker/{}", ID.to_uppercase())), None);
    }

    #[test]
    fn kubernetes_systemd_driver() {
        let uid = UID.replace('-', "_");
        for (class, slice) in [
            (
                "burstable",
                format!("kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice"),
            ),
            (
                "besteffort",
                format!("kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice"),
            ),
            ("guaranteed", format!("kubepods-pod{uid}.slice")),
        ] {
            for (prefix, runtime) in [
                ("cri-containerd", Runtime::Containerd),
                ("crio", Runtime::CriO),
                ("docker", Runtime::Docker),
            ] {
                let path = format!("/kubepods.slice/{slice}/{prefix}-{ID}.scope");
                assert_eq!(
                    container(&path),
                    Some((runtime, ID.to_owned(), Some(UID.to_owned()))),
                    "{class} {path}"
                );
            }
        }
        // CRI-O's monitor is not the container.
        let conmon = format!("/kubepods.slice/kubepods-pod{uid}.slice/crio-conmon-{ID}.scope");
        assert_eq!(container(&conmon), None);
        // The pod's own slice (the sandbox's parent) names no container.
        assert_eq!(
            container(&format!("/kubepods.slice/kubepods-pod{uid}.slice")),
            None
        );
    }

    #[test]
    fn kubernetes_cgroupfs_driver() {
        let path = format!("/kubepods/burstable/pod{UID}/{ID}");
        assert_eq!(
            container(&path),
            Some((Runtime::Unnamed, ID.to_owned(), Some(UID.to_owned())))
        );
        // A bare id outside kubepods and docker names nothing.
        assert_eq!(container(&format!("/something/pod{UID}/{ID}")), None);
    }

    #[test]
    fn podman() {
        let expect = Some((Runtime::Podman, ID.to_owned(), None));
        assert_eq!(
            container(&format!("/machine.slice/libpod-{ID}.scope")),
            expect
        );
        assert_eq!(
            container(&format!("/machine.slice/libpod-{ID}.scope/container")),
            expect
        );
        assert_eq!(container(&format!("/libpod_parent/libpod-{ID}")), expect);
        // Rootless podman, under the user's systemd.
        let rootless =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope");
        assert_eq!(container(&rootless), expect);
        assert_eq!(
            container(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn not_containers() {
        for path in [
            "/",
            "",
            "/init.scope",
            "/system.slice/nginx.service",
            "/user.slice/user-1000.slice/session-3.scope",
            "/system.slice/docker.service",
            "/kubepods.slice",
        ] {
            assert_eq!(container(path), None, "{path}");
        }
    }

    #[test]
    fn proc_cgroup_text() {
        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(Container::from_proc_cgroup(&v2).unwrap().id, ID);
        assert_eq!(
            cgroup_path(&v2).unwrap(),
            format!("/system.slice/docker-{ID}.scope")
        );
        let v1 = format!(
            "12:cpuset:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n"
        );
        assert_eq!(Container::from_proc_cgroup(&v1).unwrap().id, ID);
        assert_eq!(cgroup_path(&v1).unwrap(), format!("/docker/{ID}"));
        // Hybrid: the v2 line says nothing about the container, a v1 hierarchy does.
        let hybrid = format!("1:name=systemd:/docker/{ID}\n0::/\n");
        assert_eq!(Container::from_proc_cgroup(&hybrid).unwrap().id, ID);
        assert_eq!(cgroup_path(&hybrid).unwrap(), format!("/docker/{ID}"));
        let plain = "0::/user.slice/user-0.slice/session-1.scope\n";
        assert_eq!(Container::from_proc_cgroup(plain), None);
        assert_eq!(
            cgroup_path(plain).as_deref(),
            Some("/user.slice/user-0.slice/session-1.scope")
        );
        assert_eq!(cgroup_path(""), None);
    }
}
