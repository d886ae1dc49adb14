//! The few system calls that neither `std` nor `rustix` offer safely, each wrapped once with
//! the reason it is sound. Only the spawner process (single-threaded) and its container
//! children call these.
#![allow(unsafe_code)]

use std::ffi::{CString, c_ulong};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

/// `clone(2)` with `flags` and no new stack: like `fork`, the child continues on a copy of the
/// caller's stack. Returns `None` in the child and the child's pid in the parent.
///
/// # Safety
/// The caller must be single-threaded: the child gets a copy of the whole address space but
/// only the calling thread, so a lock held by another thread would stay locked forever in it.
pub(crate) unsafe fn clone_process(flags: libc::c_int) -> io::Result<Option<u32>> {
    let flags = libc::c_ulong::try_from(flags | libc::SIGCHLD)
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let null: libc::c_ulong = 0;
    // SAFETY: a raw clone without CLONE_VM and without a stack duplicates the process like
    // fork(); the caller guarantees there is no other thread whose state could be torn.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, null, null, null, null) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => u32::try_from(pid)
            .map(Some)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `mount(2)` with optional source, type and data.
pub(crate) fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstring).transpose()?;
    let target = cstring(target)?;
    let fstype = fstype
        .map(|fstype| CString::new(fstype).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL)))
        .transpose()?;
    let data = data
        .map(|data| CString::new(data).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL)))
        .transpose()?;
    let ptr = |value: &Option<CString>| value.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
    let ret = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `umount2(target, MNT_DETACH)`.
pub(crate) fn detach(target: &Path) -> io::Result<()> {
    let target = cstring(target)?;
    // SAFETY: a NUL-terminated path that outlives the call.
    let ret = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `pivot_root(new_root, put_old)`.
pub(crate) fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let new_root = cstring(new_root)?;
    let put_old = cstring(put_old)?;
    // SAFETY: two NUL-terminated paths that outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `unshare(flags)`.
pub(crate) fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: only called by a container's first process while it is single-threaded; the
    // namespaces it leaves are not relied upon by anything else in this process.
    if unsafe { libc::unshare(flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes capability `cap` from the bounding set (`PR_CAPBSET_DROP`).
pub(crate) fn drop_bounding_capability(cap: libc::c_ulong) -> io::Result<()> {
    let zero: libc::c_ulong = 0;
    // SAFETY: PR_CAPBSET_DROP takes a capability number and ignores the other arguments.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, zero, zero, zero) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Closes every descriptor from 3 up that is not in `keep`.
///
/// The container's first process is a copy of the spawner, so it inherits the spawner's socket
/// to the server and the descriptors of other containers; none of them may stay reachable.
pub(crate) fn close_fds_except(keep: &[RawFd]) -> io::Result<()> {
    let mut open = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let name = entry?.file_name();
        if let Some(fd) = name.to_str().and_then(|name| name.parse::<RawFd>().ok()) {
            open.push(fd);
        }
    }
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: this process is a single-threaded copy that ends with `exit` and never
            // drops the objects owning these descriptors, so nothing uses them afterwards. The
            // directory descriptor of the listing above is already closed (EBADF is harmless).
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// Registers an owned descriptor with tokio's reactor.
pub(crate) fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, so the descriptor stays open and the
    // same for as long as the `AsyncFd` lives, and nothing else can close it.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|error| error.into_parts().1)
}

/// Brings the loopback interface of the current network namespace up (a fresh namespace has it
/// down, so even 127.0.0.1 inside would be unreachable).
pub(crate) fn bring_loopback_up() -> io::Result<()> {
    let socket = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of a valid, owned `ifreq`.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled `ifru_flags`, the union member SIOCGIFFLAGS writes.
    unsafe {
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the name and flags of a valid, owned `ifreq`.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
