//! A seccomp filter that hands every `listen(2)` to a supervisor, and the supervisor's side of
//! it: seccomp user notification (`seccomp_unotify(2)`, Linux 5.0).
//!
//! - The filter is a few classic-BPF instructions: for each architecture a program of this
//!   machine may run as (x86_64, x32 and i386 here; aarch64 and 32-bit Arm; riscv64), the
//!   `listen` system call returns `SECCOMP_RET_USER_NOTIF`, and so does i386's
//!   `socketcall(SYS_LISTEN, args)`, which 32-bit glibc uses (its arguments are in the caller's
//!   memory: [`read_socketcall_args`]); every other call, and every other architecture, is
//!   allowed.
//! - It is installed with `SECCOMP_FILTER_FLAG_NEW_LISTENER` (the notification descriptor, made
//!   close-on-exec by the kernel) and `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` where the kernel
//!   has it (5.19); without it, a signal to the program while the supervisor handles its call
//!   makes the kernel restart the call, which `listen` allows.
//! - `SECCOMP_FILTER_FLAG_SPEC_ALLOW` keeps the program's speculation mitigations as they
//!   would be without the filter.
//! - Installing needs `CAP_SYS_ADMIN` or `no_new_privs`: [`install`] tries without first, so
//!   that under root setuid programs and file capabilities keep working.
//! - A chain holds one notifying filter: a second gets `EBUSY` (inside some container
//!   runtimes). Seccomp without user notification gives `EINVAL` for the flag or the action.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use libc::{c_int, c_uint, sock_filter};

// `struct seccomp_data`: `nr` at byte 0, `arch` at byte 4.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

// The low 32 bits of `args[0]` (at byte 16; these architectures are little-endian).
const ARG0_OFFSET: u32 = 16;

/// `socketcall(2)`'s call number for `listen`.
const SYS_LISTEN: u32 = 4;

/// An architecture a program on this machine may use: `AUDIT_ARCH_*`, its `listen` system
/// call numbers, and its `socketcall` number if it has one. The values are the kernel's
/// (`include/uapi/linux/audit.h`, `arch/*/entry/syscalls`, `include/uapi/linux/net.h`).
type Arch = (u32, &'static [u32], Option<u32>);

/// `AUDIT_ARCH_I386`.
pub(crate) const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// i386's `socketcall`.
pub(crate) const I386_SOCKETCALL: i32 = 102;

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
const ARCHES: &[Arch] = &[
    // x86_64, and x32 (the same audit arch, numbers with __X32_SYSCALL_BIT).
    (0xC000_003E, &[50, 0x4000_0000 | 50], None),
    // i386: listen is a system call of its own since Linux 4.3; glibc still uses socketcall.
    (AUDIT_ARCH_I386, &[363], Some(I386_SOCKETCALL as u32)),
];
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
const ARCHES: &[Arch] = &[(0xC000_00B7, &[201], None), (0x4000_0028, &[284], None)];
#[cfg(target_arch = "riscv64")]
const ARCHES: &[Arch] = &[(0xC000_00F3, &[201], None)];
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64"
)))]
const ARCHES: &[Arch] = &[];

/// The filter program, made before `fork` so that the child only has to pass a pointer.
#[derive(Debug)]
pub(crate) struct Filter {
    program: Vec<sock_filter>,
}

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(k: u32, jt: usize, jf: usize) -> sock_filter {
    sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt: jt as u8,
        jf: jf as u8,
        k,
    }
}

/// The filter for this machine's architectures; `None` where this crate does not know them.
pub(crate) fn listen_filter() -> Option<Filter> {
    if ARCHES.is_empty() {
        return None;
    }
    let load = |offset| stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset);
    let ret = |action| stmt(libc::BPF_RET | libc::BPF_K, action);
    // One block per architecture: load arch; not this one: next block; load nr; each listen
    // number: to the final NOTIFY; socketcall: load args[0], SYS_LISTEN: NOTIFY; else ALLOW.
    // After the blocks: ALLOW, NOTIFY.
    let block_len = |nrs: &[u32], socketcall: Option<u32>| {
        4 + nrs.len() + 3 * usize::from(socketcall.is_some())
    };
    let total: usize = ARCHES
        .iter()
        .map(|(_, nrs, sc)| block_len(nrs, *sc))
        .sum::<usize>()
        + 2;
    let notify_at = total - 1;
    let mut program = Vec::with_capacity(total);
    for (arch, nrs, socketcall) in ARCHES {
        program.push(load(ARCH_OFFSET));
        program.push(jump(*arch, 0, block_len(nrs, *socketcall) - 2));
        program.push(load(NR_OFFSET));
        for nr in *nrs {
            let next = program.len() + 1;
            program.push(jump(*nr, notify_at - next, 0));
        }
        if let Some(socketcall) = socketcall {
            // Not socketcall: over the next two, to ALLOW.
            program.push(jump(*socketcall, 0, 2));
            program.push(load(ARG0_OFFSET));
            let next = program.len() + 1;
            program.push(jump(SYS_LISTEN, notify_at - next, 0));
        }
        program.push(ret(libc::SECCOMP_RET_ALLOW));
    }
    program.push(ret(libc::SECCOMP_RET_ALLOW));
    program.push(ret(libc::SECCOMP_RET_USER_NOTIF));
    debug_assert_eq!(program.len(), total);
    Some(Filter { program })
}

/// Installs `filter` on the calling thread and returns the notification descriptor
/// (close-on-exec). Without `CAP_SYS_ADMIN` (`EACCES`), sets `no_new_privs` and tries again;
/// without `WAIT_KILLABLE_RECV` (`EINVAL`, before 5.19), tries without it.
///
/// Async-signal-safe: it is called between `fork` and `exec`. It allocates nothing.
pub(crate) fn install(filter: &Filter) -> io::Result<OwnedFd> {
    let prog = libc::sock_fprog {
        len: filter.program.len() as u16,
        filter: filter.program.as_ptr() as *mut sock_filter,
    };
    // SPEC_ALLOW (4.17): the filter is no sandbox, so it must not switch on the speculation
    // mitigations a kernel booted with `spec_store_bypass_disable=seccomp` (the default before
    // 5.16) forces on filtered tasks: the program runs as it would without the wrapper.
    let base = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    let mut flags = base | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    let mut tried_no_new_privs = false;
    loop {
        // SAFETY: `prog` points to `filter.program`, alive for the call; the kernel copies it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as c_uint,
                flags as c_uint,
                &prog as *const libc::sock_fprog,
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just made this descriptor for this process.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL) if flags != base => flags = base,
            Some(libc::EACCES) if !tried_no_new_privs => {
                tried_no_new_privs = true;
                // SAFETY: prctl with integer arguments only.
                if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            _ => return Err(err),
        }
    }
}

/// Installs the filter on a thread made for it, which then exits: whether this kernel and this
/// environment take it, without covering this process.
pub(crate) fn probe(filter: &Filter) -> io::Result<()> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| install(filter).map(drop))
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the probe thread panicked")))
    })
}

/// Arranges for the child of `command`, between fork and exec, to restore the signal mask
/// `blocked` took, install `filter`, and send the notification descriptor over `socket` (or
/// a failure byte, if the filter could not be installed).
pub(crate) fn install_on_exec(
    command: &mut std::process::Command,
    filter: Filter,
    blocked: super::supervise::Blocked,
    socket: RawFd,
) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and makes only
    // async-signal-safe calls (pthread_sigmask, prctl, seccomp, sendmsg, close); it allocates
    // nothing (the filter program was built before the fork).
    unsafe {
        command.pre_exec(move || {
            blocked.restore()?;
            match install(&filter) {
                Ok(notify) => {
                    let sent = send_fd(socket, notify.as_raw_fd());
                    drop(notify);
                    sent
                }
                Err(err) => {
                    send_failure(socket);
                    Err(err)
                }
            }
        })
    };
}

/// Sends descriptor `fd` over the Unix socket `sock` (`SCM_RIGHTS`), with one byte.
///
/// Async-signal-safe: it is called between `fork` and `exec`.
pub(crate) fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    let mut byte = [1u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    #[repr(C)]
    union Control {
        buf: [u8; 64],
        _align: libc::cmsghdr,
    }
    let mut control = Control { buf: [0; 64] };
    // SAFETY: CMSG_SPACE computes a size.
    let space = unsafe { libc::CMSG_SPACE(mem::size_of::<c_int>() as u32) } as usize;
    // SAFETY: msghdr is plain old data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: `control` is a live, aligned local of 64 bytes, more than `space`.
    msg.msg_control = unsafe { control.buf.as_mut_ptr() }.cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` describes a control buffer large enough for one cmsghdr and one int, so
    // CMSG_FIRSTHDR is non-null and CMSG_DATA points inside the buffer.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), fd);
    }
    // SAFETY: `msg` and everything it points to are live locals.
    if unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends one byte without a descriptor: the child's word that installing the filter failed.
///
/// Async-signal-safe.
pub(crate) fn send_failure(sock: RawFd) {
    let byte = 0u8;
    // SAFETY: one byte from a live local.
    unsafe { libc::send(sock, (&byte as *const u8).cast(), 1, libc::MSG_NOSIGNAL) };
}

/// What the child sent over `sock`, without waiting: `Ok(Some(fd))` for a descriptor (made
/// close-on-exec here), `Ok(None)` for nothing or the failure byte.
pub(crate) fn recv_fd(sock: &impl AsFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain old data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    let flags = libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC;
    // SAFETY: `msg` and the buffers it points to are live locals of the sizes it states.
    let n = unsafe { libc::recvmsg(sock.as_fd().as_raw_fd(), &mut msg, flags) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(err);
    }
    let mut found = None;
    // SAFETY: the kernel filled `msg`'s control buffer; CMSG_FIRSTHDR/NXTHDR walk it within
    // `msg_controllen`, and an SCM_RIGHTS message's data holds descriptors now owned here.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..bytes / mem::size_of::<c_int>() {
                    let fd = std::ptr::read_unaligned(data.cast::<c_int>().add(i));
                    let owned = OwnedFd::from_raw_fd(fd);
                    // One is expected; any other is closed when dropped.
                    if found.is_none() {
                        found = Some(owned);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(found)
}

/// One `listen(fd, backlog)` call waiting for an answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Notification {
    pub(crate) id: u64,
    /// The calling thread's id, in this process's PID namespace (0 if it has none there).
    pub(crate) tid: u32,
    /// `listen`'s arguments, as the C `int`s the kernel takes; for a `socketcall`, 0 and 0
    /// until [`read_socketcall_args`] has read them.
    pub(crate) fd: c_int,
    pub(crate) backlog: c_int,
    /// For i386's `socketcall(SYS_LISTEN, args)`: the address of its arguments (two 32-bit
    /// values) in the caller's memory.
    pub(crate) socketcall_args: Option<u64>,
}

/// The kernel's sizes of `struct seccomp_notif` and `struct seccomp_notif_resp`, which may be
/// larger than this crate's (`SECCOMP_GET_NOTIF_SIZES`, Linux 5.0).
fn notif_sizes() -> (usize, usize) {
    static SIZES: OnceLock<(usize, usize)> = OnceLock::new();
    *SIZES.get_or_init(|| {
        let mut sizes = libc::seccomp_notif_sizes {
            seccomp_notif: 0,
            seccomp_notif_resp: 0,
            seccomp_data: 0,
        };
        // SAFETY: the kernel writes the three sizes into the live local.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_GET_NOTIF_SIZES as c_uint,
                0 as c_uint,
                &mut sizes as *mut libc::seccomp_notif_sizes,
            )
        };
        let ours = (
            mem::size_of::<libc::seccomp_notif>(),
            mem::size_of::<libc::seccomp_notif_resp>(),
        );
        if rc != 0 {
            return ours;
        }
        (
            ours.0.max(usize::from(sizes.seccomp_notif)),
            ours.1.max(usize::from(sizes.seccomp_notif_resp)),
        )
    })
}

/// Receives one notification (`SECCOMP_IOCTL_NOTIF_RECV`). Call it only when the descriptor
/// polls readable: it waits otherwise. `ENOENT`: the caller was killed since.
pub(crate) fn recv(notify: &OwnedFd) -> io::Result<Notification> {
    let (size, _) = notif_sizes();
    // Zeroed, as the kernel requires, and aligned for the struct.
    let mut buf = vec![0u64; size.div_ceil(8)];
    // SAFETY: `buf` is a zeroed, 8-byte aligned buffer of at least the kernel's size of
    // `struct seccomp_notif`; the kernel writes one into it.
    let rc = unsafe {
        libc::ioctl(
            notify.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV as _,
            buf.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the buffer holds at least a `seccomp_notif`, aligned, just written.
    let notif = unsafe { std::ptr::read(buf.as_ptr().cast::<libc::seccomp_notif>()) };
    if notif.data.arch == AUDIT_ARCH_I386 && notif.data.nr == I386_SOCKETCALL {
        return Ok(Notification {
            id: notif.id,
            tid: notif.pid,
            fd: 0,
            backlog: 0,
            socketcall_args: Some(notif.data.args[1] & 0xFFFF_FFFF),
        });
    }
    Ok(Notification {
        id: notif.id,
        tid: notif.pid,
        // The kernel's listen takes two ints: the low 32 bits of each argument.
        fd: notif.data.args[0] as u32 as c_int,
        backlog: notif.data.args[1] as u32 as c_int,
        socketcall_args: None,
    })
}

/// `(fd, backlog)` of a 32-bit `socketcall(SYS_LISTEN, args)`, read from the memory of thread
/// `tid` at `addr` (`process_vm_readv(2)`, which needs the same ptrace access as `pidfd_getfd`).
/// `EFAULT` for an address the program cannot read either. Check the notification is still
/// valid afterwards: only then was `tid` the caller.
pub(crate) fn read_socketcall_args(tid: u32, addr: u64) -> io::Result<(c_int, c_int)> {
    let mut words = [0u32; 2];
    let local = libc::iovec {
        iov_base: words.as_mut_ptr().cast(),
        iov_len: mem::size_of_val(&words),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: mem::size_of_val(&words),
    };
    let tid = libc::pid_t::try_from(tid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: `local` describes the live array `words`; the kernel writes at most its size.
    // `remote` is only read, in the other process, by the kernel.
    let n = unsafe { libc::process_vm_readv(tid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != mem::size_of_val(&words) {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok((words[0] as c_int, words[1] as c_int))
}

/// Whether notification `id` still waits for an answer (`SECCOMP_IOCTL_NOTIF_ID_VALID`): a
/// thread id read before this is still the caller's.
pub(crate) fn id_valid(notify: &OwnedFd, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64 from the live local.
    let rc = unsafe {
        libc::ioctl(
            notify.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
            &id as *const u64,
        )
    };
    rc == 0
}

/// The answer to one notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The call returns this value.
    Value(i64),
    /// The call fails with this errno.
    Errno(c_int),
    /// The kernel carries out the call as the program made it
    /// (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`, Linux 5.5).
    Continue,
}

/// `SECCOMP_USER_NOTIF_FLAG_CONTINUE` as the `flags` field takes it (libc's type differs by
/// target).
const CONTINUE: u32 = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as _;

/// Answers notification `id` (`SECCOMP_IOCTL_NOTIF_SEND`). `ENOENT`: the caller is gone or was
/// interrupted; nothing waits for the answer any more.
pub(crate) fn answer(notify: &OwnedFd, id: u64, answer: Answer) -> io::Result<()> {
    let (_, size) = notif_sizes();
    let mut buf = vec![0u64; size.div_ceil(8)];
    let (val, error, flags) = match answer {
        Answer::Value(v) => (v, 0, 0),
        Answer::Errno(e) => (0, -e, 0),
        Answer::Continue => (0, 0, CONTINUE),
    };
    let resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: `buf` is aligned and at least as large as a `seccomp_notif_resp`.
    unsafe { std::ptr::write(buf.as_mut_ptr().cast::<libc::seccomp_notif_resp>(), resp) };
    // SAFETY: `buf` holds a response of the kernel's size; the kernel reads it.
    let rc = unsafe {
        libc::ioctl(
            notify.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            buf.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program() {
        let filter = listen_filter().expect("a known architecture");
        let len = filter.program.len();
        let last = &filter.program[len - 1];
        assert_eq!(last.k, libc::SECCOMP_RET_USER_NOTIF);
        for (i, insn) in filter.program.iter().enumerate() {
            if insn.code == (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16 {
                assert!(i + 1 + usize::from(insn.jt) < len);
                assert!(i + 1 + usize::from(insn.jf) < len);
                // A listen number (or SYS_LISTEN) jumps to NOTIFY.
                if insn.jt > 0 {
                    assert_eq!(i + 1 + usize::from(insn.jt), len - 1);
                }
                // A mismatch lands on a load of the next block or on ALLOW.
                if insn.jf > 0 {
                    let to = &filter.program[i + 1 + usize::from(insn.jf)];
                    let load_arch = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
                    assert!(
                        (to.code == load_arch && to.k == ARCH_OFFSET)
                            || to.k == libc::SECCOMP_RET_ALLOW,
                        "instruction {i}"
                    );
                }
            }
        }
    }
}
