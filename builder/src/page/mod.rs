//! The pack page (`packs/<pack>/index.html`) and the store's index of packs
//! (`index.html`): static HTML written into the store by `publish`,
//! `promote`, `resign` and `page`, served by the same CDN as everything else.
//!
//! Self-contained by construction: one inline stylesheet allowed by its hash
//! in a Content-Security-Policy that forbids everything else (no script, no
//! outside request of any kind), system fonts, relative links into the store
//! so a mirror serves a working page, and readable without JavaScript (there
//! is none). Accessible: one `h1`, ordered headings, landmarks, captions and
//! column headers on every table, a skip link, visible focus, colours checked
//! for WCAG AA contrast ([`style`]).
//!
//! [`model`] computes what is shown from verified store data, here it is
//! rendered with askama templates (`builder/templates/`), which escape every
//! value: pack names, descriptions and mod names come from creators and from
//! Modrinth or CurseForge, and are never markup.

pub mod model;
pub mod style;
pub mod write;

use askama::Template;

pub use model::{ChannelData, IndexRow, PackView, PageInput, PageTrust};

/// A page could not be rendered (a template bug; never the input's fault).
#[derive(Debug, thiserror::Error)]
#[error("rendering the page: {0}")]
pub struct RenderError(String);

impl crate::exit::HasExitClass for RenderError {
    fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::Error
    }
}

#[derive(Template)]
#[template(path = "pack.html")]
struct PackTemplate<'a> {
    v: &'a PackView,
    /// The store index's row for this pack, as JSON (see [`write`]).
    index: &'a str,
    style: &'a str,
    csp: &'a str,
    builder_version: &'static str,
}

#[derive(Template)]
#[template(path = "store.html")]
struct StoreTemplate<'a> {
    rows: &'a [IndexRow],
    /// Every pack id listed, space-separated (read back by the next writer).
    packs: &'a str,
    /// Store key of the icon blob (the index sits at the store's root).
    icon: Option<&'a str>,
    style: &'a str,
    csp: &'a str,
    builder_version: &'static str,
}

/// The pack page's HTML.
pub fn render_pack_page(view: &PackView) -> Result<String, RenderError> {
    render_pack_page_with_row(view, "")
}

/// The pack page's HTML, carrying its store index row (JSON).
pub fn render_pack_page_with_row(view: &PackView, index_row: &str) -> Result<String, RenderError> {
    let style = style::stylesheet();
    let csp = style::content_security_policy(&style);
    PackTemplate {
        v: view,
        index: index_row,
        style: &style,
        csp: &csp,
        builder_version: env!("CARGO_PKG_VERSION"),
    }
    .render()
    .map_err(|e| RenderError(e.to_string()))
}

/// The store index's HTML (rows sorted by pack name).
pub fn render_store_index(rows: &[IndexRow], icon: Option<&str>) -> Result<String, RenderError> {
    let style = style::stylesheet();
    let csp = style::content_security_policy(&style);
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then(a.pack.cmp(&b.pack))
    });
    let mut ids: Vec<&str> = rows.iter().map(|r| r.pack.as_str()).collect();
    ids.sort_unstable();
    let packs = ids.join(" ");
    StoreTemplate {
        rows: &rows,
        packs: &packs,
        icon,
        style: &style,
        csp: &csp,
        builder_version: env!("CARGO_PKG_VERSION"),
    }
    .render()
    .map_err(|e| RenderError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::model::tests::{file, manifest, pointer};
    use super::*;

    fn input(name: &str, description: &str, mod_name: &str) -> PageInput {
        let mut m = manifest(
            "1.0",
            vec![file("mods/x.jar", b"x", mod_name, "1.0", "modrinth:AAA/v")],
        );
        m.name = name.into();
        m.description = description.into();
        let mut p = pointer("production", 3, &m, 1_000);
        p.exports.instance = Some(format!(
            "packs/p/instances/{}/p-production.zip",
            atlas_proto::Sha256Digest::of(b"zip")
        ));
        p.exports.mrpack = Some(format!("packs/p/builds/{}/pack.mrpack", p.build));
        PageInput {
            pack: "p".into(),
            channels: vec![ChannelData {
                pointer: p,
                manifest: m,
                history: Vec::new(),
                mrpack_size: Some(2048),
                instance_size: Some(4096),
            }],
            public_url: "https://cdn.example.com/atlas/".into(),
            trust: PageTrust::Keys(vec!["ed25519:AAAA".into()]),
            icon: Some("blobs/sha256/ab/abcd".into()),
            notices: Vec::new(),
        }
    }

    #[test]
    fn names_descriptions_and_mod_names_are_never_markup() {
        let evil = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";
        let i = input(evil, evil, evil);
        let html = render_pack_page(&model::pack_page(&i, &[vec!["<b>k</b>".into()]])).expect("render");
        assert!(!html.contains("<script"), "a script element got through");
        assert!(!html.contains("<img src=x"), "an element got through");
        assert!(!html.contains("<b>k</b>"));
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "escaped text is shown"
        );
        let index = render_store_index(&[model::index_row(&i)], None).expect("render");
        assert!(!index.contains("<script"));
        assert!(!index.contains("<img src=x"));
    }

    #[test]
    fn the_page_is_self_contained_and_structured() {
        let html =
            render_pack_page(&model::pack_page(&input("My Pack", "A pack.", "Sodium"), &[])).expect("render");
        let style = style::stylesheet();
        assert!(
            html.contains(&format!("<style>{style}</style>")),
            "the hashed stylesheet, verbatim"
        );
        assert!(html.contains("default-src &#39;none&#39;"), "CSP present");
        assert_eq!(html.matches("<h1").count(), 1);
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://"), "no plain-http reference");
        // Every src/href that is not a link out is relative (works from any mirror).
        for attr in ["src=\"", "href=\""] {
            for part in html.split(attr).skip(1) {
                let target = part.split('"').next().unwrap_or_default();
                let outward = target.starts_with("https://modrinth.com/")
                    || target.starts_with("https://www.curseforge.com/");
                assert!(
                    outward || !target.contains("://"),
                    "{attr}{target}: only relative links into the store"
                );
            }
        }
        assert!(html.contains("href=\"instances/"), "{html}");
        assert!(html.contains("<meta name=\"atlas-pointers\" content=\"production=3\">"));
        assert!(
            html.contains("https://cdn.example.com/atlas/packs/p/instances/"),
            "link to paste"
        );
        assert!(html.contains("--key &#39;ed25519:AAAA&#39;"), "host command");
        let index = render_store_index(
            &[model::index_row(&input("My Pack", "", "S"))],
            Some("blobs/sha256/ab/ab"),
        )
        .expect("render");
        assert!(
            index.contains("<link rel=\"icon\" href=\"blobs/sha256/ab/ab\">"),
            "{index}"
        );
        assert!(index.contains("href=\"packs/p/index.html\""), "{index}");
    }
}
