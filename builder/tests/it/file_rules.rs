//! `[[files]]` rules of a native pack over many files (issue 17 item 5): the
//! planner matches every rule in one pass, and must decide exactly as the
//! README says, which this test pins against a reference written the plain
//! way (each entry's globs tried in turn, for each file): an entry applies
//! when one of its includes matches and none of its excludes does, the last
//! entry that applies decides side, optional, default, preserve and
//! description, and the first include glob (in entry order) that selects no
//! file is the error. Speed is measured by `scripts/bench-rules.sh`
//! (docs/BENCHMARKS.md), never here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use atlas_builder::build::native::plan;
use atlas_builder::plan::{PlanError, PlanOptions};
use atlas_builder::repo::PackSource;
use atlas_proto::v1::Side;
use atlas_testkit::git::GitRepo;
use globset::{GlobBuilder, GlobMatcher};

/// A deterministic generator (64-bit LCG, Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

#[derive(Debug, Clone)]
struct Rule {
    include: Vec<String>,
    exclude: Vec<String>,
    side: &'static str,
    optional: bool,
    default: bool,
    preserve: bool,
    description: Option<String>,
}

/// What the last applying rule gives a file.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    side: Side,
    optional: bool,
    default_enabled: bool,
    preserve: bool,
    description: String,
}

fn files(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 6 {
            0 => format!("config/m{}/f{i}.json", i % 17),
            1 => format!("config/m{}/sub/f{i}.toml", i % 13),
            2 => format!("mods/x{i}.jar"),
            3 => format!("kubejs/server_scripts/s{i}.js"),
            4 => format!("top{i}.txt"),
            // Selected by no rule.
            _ => format!("notes/n{i}.md"),
        })
        .collect()
}

/// Rules as packs write them: general globs first, then many literal
/// paths, now and then a general glob again (overriding what came
/// before), excludes on some of each.
fn random_rules(rng: &mut Lcg, files: &[String], n: usize) -> Vec<Rule> {
    let sides = ["both", "client", "server"];
    let general = |rng: &mut Lcg| -> String {
        match rng.below(7) {
            0 => "config/**".into(),
            1 => format!("config/m{}/**", rng.below(17)),
            2 => "**/*.json".into(),
            3 => "*.txt".into(),
            4 => format!("config/m{}/sub/*.toml", rng.below(13)),
            5 => format!("mods/x{}?.jar", rng.below(60)),
            _ => "kubejs/**/*.js".into(),
        }
    };
    // A file some rule may list: never the `notes/` ones, and only from the
    // first half, so that general rules (and their excludes) decide the rest.
    let literal = |rng: &mut Lcg| files[rng.below(files.len() / 12) * 6 + rng.below(5)].clone();
    let mut rules: Vec<Rule> = (0..n)
        .map(|k| {
            let is_general = k < n / 20 || k % 50 == 0;
            let count = 1 + rng.below(3);
            let include = (0..count)
                .map(|_| if is_general { general(rng) } else { literal(rng) })
                .collect();
            let exclude = match rng.below(if is_general { 3 } else { 10 }) {
                0 => vec![general(rng)],
                1 if is_general => vec![literal(rng), literal(rng)],
                _ => Vec::new(),
            };
            Rule {
                include,
                exclude,
                side: sides[rng.below(3)],
                optional: rng.below(5) == 0,
                default: rng.below(2) == 0,
                preserve: rng.below(7) == 0,
                description: (rng.below(6) == 0).then(|| format!("d{}", rng.below(1000))),
            }
        })
        .collect();
    // Near the end: a general rule whose excludes keep earlier decisions
    // for some of its files, then a literal one overriding it.
    rules.push(Rule {
        include: vec!["config/**".into(), "*.txt".into()],
        exclude: vec!["**/*.toml".into(), "top1?.txt".into()],
        side: "client",
        optional: true,
        default: false,
        preserve: false,
        description: Some("late".into()),
    });
    rules.push(Rule {
        include: vec![files[0].clone()],
        exclude: Vec::new(),
        side: "server",
        optional: false,
        default: true,
        preserve: true,
        description: None,
    });
    rules
}

fn matcher(pattern: &str) -> GlobMatcher {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .expect("valid glob")
        .compile_matcher()
}

/// The rules applied the plain way: per file, every entry in turn. Returns
/// each selected file's decision, and the include globs (entry, pattern)
/// that selected no file, in entry order.
fn reference(rules: &[Rule], files: &[String]) -> (BTreeMap<String, Decision>, Vec<(usize, String)>) {
    let compiled: Vec<(Vec<GlobMatcher>, Vec<GlobMatcher>)> = rules
        .iter()
        .map(|r| {
            (
                r.include.iter().map(|p| matcher(p)).collect(),
                r.exclude.iter().map(|p| matcher(p)).collect(),
            )
        })
        .collect();
    let mut used: Vec<Vec<bool>> = rules.iter().map(|r| vec![false; r.include.len()]).collect();
    let mut out = BTreeMap::new();
    for path in files {
        let mut chosen = None;
        for (i, (include, exclude)) in compiled.iter().enumerate() {
            let hits: Vec<usize> = (0..include.len())
                .filter(|j| include[*j].is_match(path))
                .collect();
            if !hits.is_empty() && !exclude.iter().any(|g| g.is_match(path)) {
                for j in hits {
                    used[i][j] = true;
                }
                chosen = Some(&rules[i]);
            }
        }
        if let Some(r) = chosen {
            let side = match r.side {
                "client" => Side::Client,
                "server" => Side::Server,
                _ => Side::Both,
            };
            out.insert(
                path.clone(),
                Decision {
                    side,
                    optional: r.optional,
                    default_enabled: !r.optional || r.default,
                    preserve: r.preserve,
                    description: r.description.clone().unwrap_or_default(),
                },
            );
        }
    }
    let unused = used
        .iter()
        .enumerate()
        .flat_map(|(i, u)| {
            u.iter()
                .enumerate()
                .filter(|(_, x)| !**x)
                .map(move |(j, _)| (i, j))
        })
        .map(|(i, j)| (i, rules[i].include[j].clone()))
        .collect();
    (out, unused)
}

/// Drops include globs that select nothing (and entries left without one):
/// no decision changes, as such a glob never made its entry apply.
fn prune(mut rules: Vec<Rule>, files: &[String]) -> Vec<Rule> {
    let (_, unused) = reference(&rules, files);
    for (i, pattern) in unused.into_iter().rev() {
        let pos = rules[i]
            .include
            .iter()
            .rposition(|p| *p == pattern)
            .expect("listed");
        rules[i].include.remove(pos);
        if rules[i].include.is_empty() {
            rules.remove(i);
        }
    }
    rules
}

fn pack_toml(rules: &[Rule]) -> String {
    let mut t = String::from(
        "id = \"rules\"\nname = \"Rules\"\nversion = \"1.0.0\"\nminecraft = \"1.21.1\"\n\
         loader = { kind = \"fabric\", version = \"0.16.9\" }\n",
    );
    let list = |v: &[String]| v.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ");
    for r in rules {
        write!(
            t,
            "\n[[files]]\ninclude = [{}]\nexclude = [{}]\nside = \"{}\"\noptional = {}\ndefault = {}\npreserve = {}\n",
            list(&r.include),
            list(&r.exclude),
            r.side,
            r.optional,
            r.default,
            r.preserve
        )
        .expect("write to a String");
        if let Some(d) = &r.description {
            writeln!(t, "description = {d:?}").expect("write to a String");
        }
    }
    t
}

fn planned(repo: &GitRepo) -> Result<BTreeMap<String, Decision>, PlanError> {
    let source = PackSource::open(repo.path(), false).expect("open");
    let p = plan(&source, &PlanOptions::default())?;
    Ok(p.manifest
        .files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                Decision {
                    side: f.side(),
                    optional: f.optional,
                    default_enabled: f.default_enabled,
                    preserve: f.preserve,
                    description: f.description.clone(),
                },
            )
        })
        .collect())
}

#[test]
fn many_rules_decide_as_the_last_applying_entry_and_report_the_first_unused_glob() {
    let files = files(600);
    let mut rng = Lcg(17);
    let rules = prune(random_rules(&mut rng, &files, 1200), &files);
    let (expected, unused) = reference(&rules, &files);
    assert_eq!(unused, []);
    assert!(rules.len() > 900, "{} rules left", rules.len());
    // The generated case covers what it should: files left out, every
    // side, excludes that changed a decision.
    assert!(
        expected.len() > 400 && expected.len() <= files.len() * 5 / 6,
        "{}",
        expected.len()
    );
    for side in [Side::Both, Side::Client, Side::Server] {
        assert!(expected.values().any(|d| d.side == side), "{side:?}");
    }
    let without_excludes: Vec<Rule> = rules
        .iter()
        .map(|r| Rule {
            exclude: Vec::new(),
            ..r.clone()
        })
        .collect();
    let loose = reference(&without_excludes, &files).0;
    let changed = expected.iter().filter(|(p, d)| loose.get(*p) != Some(*d)).count();
    assert!(changed > 20, "excludes changed {changed} decisions");

    let repo = GitRepo::init().expect("git init");
    for (i, f) in files.iter().enumerate() {
        repo.write(f, format!("{i}\n")).expect("write");
    }
    repo.write("pack.toml", pack_toml(&rules)).expect("write");
    repo.commit_all("pack").expect("commit");
    let got = planned(&repo).expect("plan");
    assert_eq!(got.len(), expected.len());
    for (path, want) in &expected {
        assert_eq!(got.get(path), Some(want), "{path}");
    }
    // The last two rules: a literal one, and a general one with excludes.
    let d = |path: &str| got.get(path).unwrap_or_else(|| panic!("{path} not selected"));
    assert_eq!(
        (d(&files[0]).side, d(&files[0]).preserve),
        (Side::Server, true),
        "the last rule lists {}",
        files[0]
    );
    assert_eq!(files[540], "config/m13/f540.json");
    assert_eq!(
        (
            d(&files[540]).side,
            d(&files[540]).default_enabled,
            d(&files[540]).description.as_str()
        ),
        (Side::Client, false, "late")
    );
    assert_eq!(files[541], "config/m8/sub/f541.toml");
    assert_ne!(d(&files[541]).description, "late", "excluded from the late rule");
    // Literal rules decide some files, general ones others.
    let by_literal = expected
        .keys()
        .filter(|p| rules.iter().rev().find(|r| r.include.contains(p)).is_some())
        .count();
    assert!(by_literal > 100 && by_literal < expected.len(), "{by_literal}");

    // Globs that select nothing, one of them matching only files its own
    // entry excludes: the first in entry order is named.
    let mut broken = rules.clone();
    let excluded_only = Rule {
        include: vec!["config/m3/**".into()],
        exclude: vec!["**/*.json".into(), "**/*.toml".into()],
        ..rules[0].clone()
    };
    broken.insert(500, excluded_only);
    broken[800].include.push("nowhere/**".into());
    let (_, unused) = reference(&broken, &files);
    assert_eq!(
        unused,
        [(500, "config/m3/**".to_owned()), (800, "nowhere/**".to_owned())]
    );
    repo.write("pack.toml", pack_toml(&broken)).expect("write");
    repo.commit_all("unused globs").expect("commit");
    match planned(&repo) {
        Err(PlanError::NoMatch { entry, pattern, .. }) => {
            assert_eq!((entry, pattern.as_str()), (500, "config/m3/**"));
        }
        other => panic!("expected files[500] `config/m3/**` to match nothing, got {other:?}"),
    }
}
