//! AF_PACKET sockets for `nslab capture`: nix has the socket but none of the packet
//! options (membership, auxiliary data, statistics, a classic BPF filter) nor a
//! `sockaddr_ll` to bind, so these calls are here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A raw packet socket that receives nothing yet (protocol 0, unbound).
pub fn unbound() -> io::Result<OwnedFd> {
    // SAFETY: socket(2); protocol 0 receives nothing until bind names the interface.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor, owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets an `int` socket option.
pub fn set_int(fd: BorrowedFd, level: i32, name: i32, v: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt reads an int of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &v as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the socket promiscuous on `ifindex` (frames for other MACs too).
pub fn promiscuous(fd: BorrowedFd, ifindex: i32) -> io::Result<()> {
    let mr = libc::packet_mreq {
        mr_ifindex: ifindex,
        mr_type: libc::PACKET_MR_PROMISC as u16,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    // SAFETY: setsockopt reads a packet_mreq of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mr as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Attaches a classic BPF program (`SO_ATTACH_FILTER`).
pub fn attach_filter(fd: BorrowedFd, prog: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        // The kernel only reads the program (it copies it).
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: the kernel copies the program during the call; `prog` outlives it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes one queued frame and drops it, without waiting: its length on the wire.
pub fn discard_one(fd: BorrowedFd) -> io::Result<usize> {
    let mut buf = [0u8; 1];
    // SAFETY: recv into a 1-byte buffer we own.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The kernel's counts since the last read, which resets them (`PACKET_STATISTICS`):
/// frames received by the filter, and frames dropped because the queue was full.
pub fn counts(fd: BorrowedFd) -> io::Result<(u64, u64)> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: getsockopt into a local tpacket_stats of the size given.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            &mut st as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((u64::from(st.tp_packets), u64::from(st.tp_drops)))
}

/// Binds to `protocol` (network order) on `ifindex`; 0 and 0 take the socket off every
/// interface.
pub fn bind(fd: BorrowedFd, protocol: u16, ifindex: i32) -> io::Result<()> {
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: bind reads a sockaddr_ll of the size given.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One frame as received: its length on the wire, where it came from, and its
/// auxiliary data (`PACKET_AUXDATA`) when the socket asked for it.
pub struct Frame {
    pub len: usize,
    pub ifindex: i32,
    pub pkttype: u8,
    pub aux: Option<libc::tpacket_auxdata>,
}

/// recvmsg of one frame into `buf`, without waiting.
pub fn recv(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<Frame> {
    // SAFETY: all-zero sockaddr_ll, iovec, msghdr and control buffer are valid; recvmsg
    // fills them within the sizes given; CMSG_* walk only the control length returned.
    unsafe {
        let mut from: libc::sockaddr_ll = std::mem::zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let mut control = [0u64; 16];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = &mut from as *mut _ as *mut libc::c_void;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(
            fd.as_raw_fd(),
            &mut msg,
            libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        );
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut aux = None;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                aux = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(c) as *const libc::tpacket_auxdata
                ));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        Ok(Frame {
            len: n as usize,
            ifindex: from.sll_ifindex,
            pkttype: from.sll_pkttype,
            aux,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Root only (CAP_NET_RAW): a socket on loopback, in a network namespace of its own
    /// (a child's), takes every option capture sets, has nothing queued and counts
    /// nothing.
    #[test]
    fn a_capture_socket_takes_every_option_and_has_nothing_yet() {
        if !nix::unistd::geteuid().is_root() {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "needs root");
            return;
        }
        let code = crate::sys::child::testing::in_child(|| {
            if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                return 1;
            }
            // Loopback is ifindex 1 and down in a new namespace: nothing is queued.
            let Ok(s) = unbound() else { return 2 };
            let all = (libc::ETH_P_ALL as u16).to_be();
            if bind(s.as_fd(), all, 1).is_err()
                || set_int(s.as_fd(), libc::SOL_PACKET, libc::PACKET_AUXDATA, 1).is_err()
                || promiscuous(s.as_fd(), 1).is_err()
            {
                return 3;
            }
            let mut buf = [0u8; 64];
            // Nothing to read: EAGAIN, or ENETDOWN while loopback is down.
            match recv(s.as_fd(), &mut buf) {
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENETDOWN) => {}
                _ => return 4,
            }
            // A program that keeps nothing is accepted; the counts start at 0.
            let reject = [libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0,
            }];
            if attach_filter(s.as_fd(), &reject).is_err() || counts(s.as_fd()).ok() != Some((0, 0))
            {
                return 5;
            }
            if discard_one(s.as_fd()).is_ok() {
                return 6;
            }
            0
        });
        assert_eq!(code, Some(0));
    }
}
