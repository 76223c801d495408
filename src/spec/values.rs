//! Parsers for the typed scalars of the language: CIDRs, MACs, durations, sizes, rates and
//! percentages. Each returns a message (without position) that the caller locates.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

/// An address with its prefix length, as `10.0.0.1/31`. A bare address gets the host length
/// (/32 or /128) when `host_default` is set.
pub fn parse_cidr(text: &str, host_default: bool) -> Result<IpNet, String> {
    let text = text.trim();
    if let Some((addr, len)) = text.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("prefix length `/{len}` is not between /0 and /{max}"))?;
        IpNet::new(addr, len).map_err(|e| e.to_string())
    } else {
        let addr: IpAddr = text
            .parse()
            .map_err(|_| format!("`{text}` is not an address in CIDR form"))?;
        if !host_default {
            return Err(format!("`{text}` has no prefix length"));
        }
        Ok(IpNet::from(addr))
    }
}

/// A prefix for pools and subnets: host bits must be zero.
pub fn parse_prefix(text: &str) -> Result<IpNet, String> {
    let net = parse_cidr(text, false)?;
    if net.addr() != net.network() {
        return Err(format!(
            "`{text}` has host bits set; the prefix is `{}`",
            net.trunc()
        ));
    }
    Ok(net)
}

/// A unicast MAC address in colon notation.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split(':').collect();
    let bad = || format!("`{text}` is not a MAC address like 02:00:00:00:00:01");
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(bad());
        }
        mac[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "`{text}` is a multicast MAC address; an interface needs unicast"
        ));
    }
    if mac == [0; 6] {
        return Err(format!("`{text}` is the all-zero MAC address"));
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `250ms`, `10s`, `1m`, `1h`, `500us`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (num, unit) = split_number(text);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 250ms, 10s or 1m"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown duration unit `{unit}` in `{text}` (use us, ms, s, m or h)"
            ));
        }
    };
    if !secs.is_finite() || !(0.0..=365.0 * 86400.0).contains(&secs) {
        return Err(format!("duration `{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A byte size: `128M`, `1G`, `512k`, `1024`; binary multiples (K = 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (num, unit) = split_number(text);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 128M, 1G or 65536"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown size unit `{unit}` in `{text}` (use K, M, G or T)"
            ));
        }
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("size `{text}` is out of range"));
    }
    Ok(bytes as u64)
}

/// A rate in bits per second, tc-style: `100mbit`, `1gbit`, `64kbit`, or bytes with `bps`.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (num, unit) = split_number(text);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a rate like 100mbit or 1gbit"))?;
    let bits: f64 = match unit.to_ascii_lowercase().as_str() {
        "bit" | "" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => {
            return Err(format!(
                "unknown rate unit `{unit}` in `{text}` (use bit, kbit, mbit, gbit or bps, kbps, mbps, gbps)"
            ));
        }
    };
    let bps = value * bits;
    if !bps.is_finite() || !(8.0..=4e12).contains(&bps) {
        return Err(format!("rate `{text}` is out of range (8bit to 4tbit)"));
    }
    Ok(bps as u64)
}

/// A percentage `0.5%` (or a plain number taken as percent), returned as a fraction of 1.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let num = t.strip_suffix('%').unwrap_or(t).trim();
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage like 0.5%"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("percentage `{text}` is not between 0% and 100%"));
    }
    Ok(v / 100.0)
}

fn split_number(text: &str) -> (&str, &str) {
    let idx = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (text[..idx].trim(), text[idx..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.0.0.1/31", false).unwrap().to_string(),
            "10.0.0.1/31"
        );
        assert_eq!(
            parse_cidr("10.0.0.1", true).unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert!(parse_cidr("10.0.0.1", false).is_err());
        assert!(parse_cidr("10.0.0.300/24", false).is_err());
        assert!(parse_cidr("10.0.0.1/33", false).is_err());
        assert_eq!(parse_cidr("fd00::1/64", false).unwrap().prefix_len(), 64);
        assert!(
            parse_prefix("10.0.0.1/24")
                .unwrap_err()
                .contains("10.0.0.0/24")
        );
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:0a").unwrap(), [2, 0, 0, 0, 0, 10]);
        assert!(
            parse_mac("01:00:00:00:00:00")
                .unwrap_err()
                .contains("multicast")
        );
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert_eq!(format_mac(&[2, 0, 0, 0, 0, 10]), "02:00:00:00:00:0a");
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3 parsecs").is_err());
        assert_eq!(parse_size("128M").unwrap(), 128 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12Q").is_err());
        assert_eq!(parse_rate("100mbit").unwrap(), 100_000_000);
        assert_eq!(parse_rate("1mbps").unwrap(), 8_000_000);
        assert!((parse_percent("0.5%").unwrap() - 0.005).abs() < 1e-12);
        assert!(parse_percent("150%").is_err());
    }
}
