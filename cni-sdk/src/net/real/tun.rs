//! tun/tap devices: rtnetlink cannot create them, so they are made through `/dev/net/tun` on a
//! thread inside the target namespace (the device is created in the namespace of the thread
//! that opens the file).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;

use super::io_err;
use crate::net::backend::TunSpec;
use crate::net::{NetError, NetResult, TunMode};
use crate::netns::NetNs;

/// Creates the persistent device `name` as `spec` says.
pub(super) async fn create(ns: &NetNs, name: &str, spec: &TunSpec) -> NetResult<()> {
    let (owned_name, spec) = (name.to_owned(), spec.clone());
    let what = format!("create tun {name:?}");
    match ns.run_blocking(move || create_here(&owned_name, &spec)).await? {
        Ok(()) => Ok(()),
        // IFF_TUN_EXCL reports an existing name as EBUSY; say what it means.
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            Err(NetError::from_errno(libc::EEXIST, format_args!("{what}: a link with this name exists")))
        }
        Err(e) => Err(io_err(e, what)),
    }
}

/// Runs on the namespace thread.
fn create_here(name: &str, spec: &TunSpec) -> io::Result<()> {
    let file = OpenOptions::new().read(true).write(true).open("/dev/net/tun")?;
    let fd = file.as_raw_fd();
    // SAFETY: `ifreq` is plain old data (a name array and a union of integers and arrays), for
    // which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // The name was validated (at most 15 bytes, no NUL), so it fits with its terminating zero.
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    let mut flags = match spec.mode {
        TunMode::Tun => libc::IFF_TUN,
        TunMode::Tap => libc::IFF_TAP,
    } | libc::IFF_TUN_EXCL;
    if !spec.pi {
        flags |= libc::IFF_NO_PI;
    }
    if spec.vnet_hdr {
        flags |= libc::IFF_VNET_HDR;
    }
    if spec.multi_queue {
        flags |= libc::IFF_MULTI_QUEUE;
    }
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: `fd` is open for the lifetime of `file`; TUNSETIFF reads and writes the `ifreq`
    // that `req` points to, which lives across the call.
    check(unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut req as *mut libc::ifreq) })?;
    if let Some(uid) = spec.owner {
        // SAFETY: TUNSETOWNER takes the uid by value; no memory is passed.
        check(unsafe { libc::ioctl(fd, libc::TUNSETOWNER, libc::c_ulong::from(uid)) })?;
    }
    if let Some(gid) = spec.group {
        // SAFETY: TUNSETGROUP takes the gid by value; no memory is passed.
        check(unsafe { libc::ioctl(fd, libc::TUNSETGROUP, libc::c_ulong::from(gid)) })?;
    }
    // SAFETY: TUNSETPERSIST takes a boolean by value; no memory is passed.
    check(unsafe { libc::ioctl(fd, libc::TUNSETPERSIST, 1 as libc::c_ulong) })?;
    Ok(())
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}
