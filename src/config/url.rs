//! The `https://host[:port]` URLs the config takes (`endpoints.urls`).

/// `https://host:port/path` → (host, port); https only.
pub fn split_url(url: &str) -> Result<(String, Option<u16>), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("`{url}` is not an https:// URL"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    split_authority(authority).ok_or_else(|| format!("`{url}` has no host"))
}

/// `host:port`, `[v6]:port` or `host`.
pub fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    if authority.is_empty() {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), Some(port.parse().ok()?))),
        None => Some((authority.to_string(), None)),
    }
}
