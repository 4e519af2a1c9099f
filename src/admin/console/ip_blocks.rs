//! IP blocks (DESIGN §5): they span organisations, so only a super administrator sees them.

// The console's pages share its entry, navigation, notices and helpers.
use super::*;
use crate::i18n::Tr;

struct BlockRow {
    ip: String,
    until: String,
    count: i32,
    reason: String,
}

#[derive(Template)]
#[template(path = "admin/ip_blocks.html")]
struct IpBlocksPage {
    nav: Nav,
    tr: Tr,
    notice: Option<String>,
    blocks: Vec<BlockRow>,
}

#[get("/admin/ip-blocks")]
pub(super) async fn ip_blocks_page(query: Query<DoneQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let tr = console.tr();
    let blocks = network::blocks(&visit.state, &console.who)
        .await
        .said(&tr)?
        .into_iter()
        .map(|b| BlockRow {
            until: when(&tr, b.blocked_until),
            count: b.block_count,
            reason: b.reason,
            ip: b.ip,
        })
        .collect();
    let page = IpBlocksPage {
        nav: console.nav(),
        notice: notice(&tr, query.done.as_deref()),
        blocks,
        tr,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
struct LiftForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    ip: String,
}

#[post("/admin/ip-blocks/lift")]
pub(super) async fn lift_ip_block(form: Form<LiftForm>, visit: Visit) -> Answer {
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let lifted = network::lift_ip_block(visit.by(&console), &form.ip)
        .await
        .said(&console.tr())?;
    let done = if lifted {
        "ip-lifted"
    } else {
        "ip-not-blocked"
    };
    Ok(see_other(&format!("/admin/ip-blocks?done={done}")))
}
