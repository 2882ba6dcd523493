//! The pages' one stylesheet, built from a palette whose contrast is
//! checked by a test (WCAG 2.x AA: at least 4.5:1 for text), with a dark
//! variant for `prefers-color-scheme: dark`. System fonts, no web fonts,
//! nothing loaded from anywhere: the Content-Security-Policy allows this
//! stylesheet by its SHA-256 and nothing else.

use base64::Engine as _;

/// The colours of one scheme, as `#rrggbb`.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub background: &'static str,
    pub text: &'static str,
    pub muted: &'static str,
    pub link: &'static str,
    pub border: &'static str,
    /// Background of code blocks and table headers.
    pub panel: &'static str,
    /// The header band and its text.
    pub band: &'static str,
    pub band_text: &'static str,
    /// Added / removed / updated markers in changelogs.
    pub added: &'static str,
    pub removed: &'static str,
    pub focus: &'static str,
}

/// Light scheme (default).
pub const LIGHT: Palette = Palette {
    background: "#ffffff",
    text: "#1b1f24",
    muted: "#555f6b",
    link: "#0b57a4",
    border: "#c9d1da",
    panel: "#f2f5f8",
    band: "#17407a",
    band_text: "#ffffff",
    added: "#116329",
    removed: "#a40e26",
    focus: "#c25e00",
};

/// Dark scheme.
pub const DARK: Palette = Palette {
    background: "#0f1419",
    text: "#e6edf3",
    muted: "#a3adb9",
    link: "#79b8ff",
    border: "#3a434d",
    panel: "#1a2129",
    band: "#17407a",
    band_text: "#ffffff",
    added: "#56d364",
    removed: "#ff8a8a",
    focus: "#ffb86b",
};

fn vars(p: &Palette) -> String {
    format!(
        "--bg:{};--fg:{};--muted:{};--link:{};--border:{};--panel:{};--band:{};--band-fg:{};--added:{};--removed:{};--focus:{}",
        p.background,
        p.text,
        p.muted,
        p.link,
        p.border,
        p.panel,
        p.band,
        p.band_text,
        p.added,
        p.removed,
        p.focus
    )
}

/// The stylesheet (one `<style>` element's content).
pub fn stylesheet() -> String {
    let rules = "\
*{box-sizing:border-box}\
html{-webkit-text-size-adjust:100%}\
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Noto Sans\",sans-serif}\
a{color:var(--link)}\
a:focus-visible,summary:focus-visible{outline:3px solid var(--focus);outline-offset:2px}\
.skip{position:absolute;left:-999px;top:0;background:var(--bg);padding:.5rem}\
.skip:focus{left:.5rem}\
header.band{background:var(--band);color:var(--band-fg);padding:1.5rem 1rem}\
header.band a{color:var(--band-fg)}\
.wrap{max-width:64rem;margin:0 auto;padding:0 1rem}\
.title{display:flex;gap:1rem;align-items:center}\
.title img{width:64px;height:64px;border-radius:12px;flex:none;background:var(--band-fg)}\
h1{margin:0;font-size:1.9rem;line-height:1.2}\
h2{margin:2.2rem 0 .6rem;font-size:1.45rem;border-bottom:1px solid var(--border);padding-bottom:.3rem}\
h3{margin:1.4rem 0 .4rem;font-size:1.15rem}\
h4{margin:1rem 0 .3rem;font-size:1rem}\
.lead{margin:.75rem 0 0;max-width:48rem}\
.facts{display:flex;flex-wrap:wrap;gap:.4rem 1.5rem;margin:.75rem 0 0;padding:0;list-style:none}\
nav.toc{border-bottom:1px solid var(--border);padding:.6rem 0}\
nav.toc ul{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;margin:0;padding:0;list-style:none}\
main{padding-bottom:3rem}\
.muted{color:var(--muted)}\
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:.5rem 0}\
dl.kv dt{color:var(--muted)}\
dl.kv dd{margin:0;min-width:0;overflow-wrap:anywhere}\
.scroll{overflow-x:auto;max-width:100%}\
table{border-collapse:collapse;width:100%;font-size:.95rem}\
caption{text-align:left;font-weight:600;padding:.3rem 0}\
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid var(--border);vertical-align:top}\
th{background:var(--panel)}\
pre{background:var(--panel);border:1px solid var(--border);border-radius:6px;padding:.7rem;overflow-x:auto;margin:.4rem 0}\
code{font:.9rem/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}\
pre code{overflow-wrap:normal}\
pre.link{white-space:pre-wrap}\
pre.link code{overflow-wrap:anywhere}\
.downloads{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:.8rem;margin:.6rem 0}\
.card{border:1px solid var(--border);border-radius:8px;padding:.8rem}\
.card p{margin:.3rem 0}\
.hash{font-size:.8rem;color:var(--muted);overflow-wrap:anywhere}\
details{border:1px solid var(--border);border-radius:8px;padding:.4rem .8rem;margin:.6rem 0}\
summary{cursor:pointer;font-weight:600;padding:.2rem 0}\
ul.changes{margin:.3rem 0;padding-left:1.2rem}\
.add{color:var(--added)}\
.del{color:var(--removed)}\
ol.steps li{margin:.3rem 0}\
.notice{border-left:4px solid var(--focus);padding:.4rem .8rem;background:var(--panel)}\
footer{border-top:1px solid var(--border);padding:1rem 0 2rem;color:var(--muted);font-size:.9rem}\
@media (max-width:40rem){h1{font-size:1.5rem}.title img{width:48px;height:48px}dl.kv{grid-template-columns:1fr}dl.kv dt{margin-top:.4rem}}";
    format!(
        ":root{{{};color-scheme:light dark}}@media (prefers-color-scheme:dark){{:root{{{}}}}}{rules}",
        vars(&LIGHT),
        vars(&DARK)
    )
}

/// The CSP source that allows exactly this stylesheet: `'sha256-<base64>'`.
pub fn style_hash(css: &str) -> String {
    let digest = atlas_proto::Sha256Digest::of(css.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest.0)
    )
}

/// The Content-Security-Policy of every page: nothing but same-origin
/// images and this stylesheet; no script, no frame, no form, no base.
pub fn content_security_policy(css: &str) -> String {
    format!(
        "default-src 'none'; img-src 'self'; style-src {}; base-uri 'none'; form-action 'none'",
        style_hash(css)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG 2.x relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).expect("hex colour");
        let channel = |shift: u32| {
            let c = f64::from((v >> shift) & 0xff) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(16) + 0.7152 * channel(8) + 0.0722 * channel(0)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn every_text_colour_meets_wcag_aa_on_its_backgrounds() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
        for p in [LIGHT, DARK] {
            let pairs = [
                ("text", p.text, p.background),
                ("text on panel", p.text, p.panel),
                ("muted", p.muted, p.background),
                ("muted on panel", p.muted, p.panel),
                ("link", p.link, p.background),
                ("link on panel", p.link, p.panel),
                ("added", p.added, p.background),
                ("removed", p.removed, p.background),
                ("band", p.band_text, p.band),
            ];
            for (what, fg, bg) in pairs {
                let c = contrast(fg, bg);
                assert!(c >= 4.5, "{what}: {fg} on {bg} is {c:.2}:1, below 4.5:1");
            }
            // Focus rings and borders are not text: WCAG 1.4.11 asks 3:1 of the ring.
            assert!(contrast(p.focus, p.background) >= 3.0, "focus ring");
        }
    }

    #[test]
    fn the_policy_names_the_stylesheet_by_hash() {
        let css = stylesheet();
        let csp = content_security_policy(&css);
        assert!(csp.starts_with("default-src 'none'; img-src 'self'; style-src 'sha256-"));
        assert!(!csp.contains("script-src"), "no script is ever allowed");
        assert_ne!(style_hash(&css), style_hash("body{}"));
    }
}
