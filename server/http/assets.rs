//! Static assets from `web/`, compiled into the binary and served under content-hashed names
//! (`/static/app.3f9c2a1be0d4.css`), so browsers may cache them forever and a new build is never
//! masked by a stale copy.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::http::error::AppError;

struct Asset {
    /// The source name in `web/`, used by templates: `app.css`.
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const SOURCES: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../web/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/app.js"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../web/icon.svg"),
    },
];

/// Each asset with its hashed file name, computed once.
static HASHED: LazyLock<Vec<(String, &'static Asset)>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.bytes);
            let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            let (stem, ext) = asset.name.rsplit_once('.').unwrap_or((asset.name, ""));
            (format!("{stem}.{hash}.{ext}"), asset)
        })
        .collect()
});

/// The URLs templates link to.
pub struct Urls {
    pub css: String,
    pub js: String,
    pub icon: String,
}

static URLS: LazyLock<Urls> = LazyLock::new(|| {
    let url = |name: &str| {
        HASHED
            .iter()
            .find(|(_, asset)| asset.name == name)
            .map(|(file, _)| format!("/static/{file}"))
            .unwrap_or_default()
    };
    Urls {
        css: url("app.css"),
        js: url("app.js"),
        icon: url("icon.svg"),
    }
});

pub fn urls() -> &'static Urls {
    &URLS
}

/// `GET /static/{file}`: only current hashed names exist; anything else is a 404.
pub async fn serve(Path(file): Path<String>) -> Result<Response, AppError> {
    let (_, asset) = HASHED
        .iter()
        .find(|(hashed, _)| *hashed == file)
        .ok_or(AppError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        asset.bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_linked_asset_has_a_content_hashed_url() {
        let urls = super::urls();
        for (url, stem, ext) in [
            (&urls.css, "app", "css"),
            (&urls.js, "app", "js"),
            (&urls.icon, "icon", "svg"),
        ] {
            let hash = url
                .strip_prefix(&format!("/static/{stem}."))
                .and_then(|rest| rest.strip_suffix(&format!(".{ext}")))
                .unwrap_or_else(|| panic!("{url} is not /static/{stem}.<hash>.{ext}"));
            assert_eq!(hash.len(), 12);
            assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        }
    }
}
