//! Direct URLs with a declared hash: no API, the file name comes from the
//! entry or from the URL's last path segment (percent-decoded).

use super::error::ModError;
use super::spec::{ModSource, ModSpec, ResolvedMod, install_path};

/// Resolves a [`ModSource::Url`] spec.
pub fn resolve(spec: &ModSpec) -> Result<ResolvedMod, ModError> {
    let ModSource::Url { url, hash } = &spec.source else {
        return Err(invalid(spec, "not a URL source".into()));
    };
    let parsed = ::url::Url::parse(url).map_err(|e| invalid(spec, format!("`{url}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(
            spec,
            format!("`{url}`: only http and https URLs can be downloaded"),
        ));
    }
    let from_url = parsed
        .path_segments()
        .and_then(|mut s| s.next_back())
        .map(percent_decode)
        .filter(|s| !s.is_empty());
    let file_name = match (&spec.filename, from_url) {
        (Some(f), _) => f.clone(),
        (None, Some(f)) => f,
        (None, None) => {
            return Err(invalid(
                spec,
                format!("`{url}` has no file name in its path; add `filename = \"...\"`"),
            ));
        }
    };
    Ok(ResolvedMod {
        path: install_path(&spec.dir, &file_name),
        url: Some(url.clone()),
        page: None,
        file_name,
        verify: hash.clone(),
        hashes: vec![hash.clone()],
        size: None,
        origin: spec.origin.clone().unwrap_or_else(|| "url".to_owned()),
        display_version: String::new(),
        distribution_disabled: false,
        modrinth: None,
        spec: spec.clone(),
    })
}

fn invalid(spec: &ModSpec, message: String) -> ModError {
    ModError::Invalid {
        name: spec.name.clone(),
        defined_in: spec.defined_in.clone(),
        message,
    }
}

/// Decodes `%XX` escapes (invalid escapes are kept as written).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("My%20Mod%2B1.jar"), "My Mod+1.jar");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
