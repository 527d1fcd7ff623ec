//! `resolvConf`: a resolv.conf file turned into a result's `dns`, as Go's `parseResolvConf`.

use cni_sdk::Dns;

/// Parses `nameserver`, `domain`, `search` and `options` lines; `#` and `;` start comments.
pub(crate) fn parse_resolv_conf(path: &str) -> Result<Dns, String> {
    let text = std::fs::read(path).map_err(|e| format!("open {path}: {}", io_text(&e)))?;
    Ok(parse(&String::from_utf8_lossy(&text)))
}

/// Go's wording of common I/O errors (`no such file or directory`), else Rust's.
fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn parse(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        let rest = fields[1..].iter().map(|s| (*s).to_owned());
        match fields[0] {
            "nameserver" => dns.nameservers.push(fields[1].to_owned()),
            "domain" => dns.domain = Some(fields[1].to_owned()),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        let dns = parse(
            "# comment\n; also\nnameserver 10.204.0.53\nnameserver fd00:204::53 extra\n\ndomain example.test\n\
             search a.test b.test\nsearch c.test\noptions ndots:5 timeout:2\nsortlist 10.0.0.0\nnameserver\n",
        );
        assert_eq!(dns.nameservers, ["10.204.0.53", "fd00:204::53"]);
        assert_eq!(dns.domain.as_deref(), Some("example.test"));
        assert_eq!(dns.search, ["a.test", "b.test", "c.test"]);
        assert_eq!(dns.options, ["ndots:5", "timeout:2"]);
        assert!(parse("").is_empty());
    }

    #[test]
    fn missing_file() {
        assert_eq!(
            parse_resolv_conf("/nonexistent/resolv.conf").unwrap_err(),
            "open /nonexistent/resolv.conf: no such file or directory"
        );
    }
}
