//! Integration tests for atlas-builder, linked into one test binary: one link of the
//! dependency tree instead of one per file, which keeps CI's disk and time in check.

mod action;
mod atlas_settings;
mod build_mods;
mod build_packwiz;
mod cli;
mod common;
mod deps;
mod exports;
mod file_rules;
mod gc;
mod gc_players;
mod keyset;
mod mistakes;
mod mrpack_import;
mod output_modes;
mod packwiz_corpus;
mod packwiz_parse;
mod packwiz_real;
mod page_browser;
mod page_race;
mod pointer_race;
mod publish;
mod publish_race;
mod resolve;
mod s3_store;
mod schemas;
mod store_cli;
