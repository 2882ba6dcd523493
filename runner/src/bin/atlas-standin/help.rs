//! The stand-in's `help` output: vanilla's command list, longer than one
//! RCON packet so that clients must reassemble it.

/// The output of `help`: longer than one RCON packet (4096 bytes).
pub fn help_lines() -> Vec<String> {
    const GAMERULES: &str = "announceAdvancements|blockExplosionDropDecay|commandBlockOutput|commandModificationBlockLimit|disableElytraMovementCheck|disableRaids|doDaylightCycle|doEntityDrops|doFireTick|doImmediateRespawn|doInsomnia|doLimitedCrafting|doMobLoot|doMobSpawning|doPatrolSpawning|doTileDrops|doTraderSpawning|doVinesSpread|doWardenSpawning|doWeatherCycle|drowningDamage|enderPearlsVanishOnDeath|fallDamage|fireDamage|forgiveDeadPlayers|freezeDamage|globalSoundEvents|keepInventory|lavaSourceConversion|logAdminCommands|maxCommandChainLength|maxCommandForkCount|maxEntityCramming|mobExplosionDropDecay|mobGriefing|naturalRegeneration|playersNetherPortalCreativeDelay|playersNetherPortalDefaultDelay|playersSleepingPercentage|projectilesCanBreakBlocks|randomTickSpeed|reducedDebugInfo|sendCommandFeedback|showDeathMessages|snowAccumulationHeight|spawnChunkRadius|spawnRadius|spectatorsGenerateChunks|tntExplosionDropDecay|universalAnger|waterSourceConversion";
    let mut lines: Vec<String> = HELP.iter().map(|s| (*s).to_owned()).collect();
    const ATTRIBUTES: &str = "generic.armor|generic.armor_toughness|generic.attack_damage|generic.attack_knockback|generic.attack_speed|generic.burning_time|generic.explosion_knockback_resistance|generic.fall_damage_multiplier|generic.flying_speed|generic.follow_range|generic.gravity|generic.jump_strength|generic.knockback_resistance|generic.luck|generic.max_absorption|generic.max_health|generic.movement_efficiency|generic.movement_speed|generic.oxygen_bonus|generic.safe_fall_distance|generic.scale|generic.step_height|generic.water_movement_efficiency|player.block_break_speed|player.block_interaction_range|player.entity_interaction_range|player.mining_efficiency|player.sneaking_speed|player.submerged_mining_speed|player.sweeping_damage_ratio|zombie.spawn_reinforcements";
    const EFFECTS: &str = "absorption|bad_omen|blindness|conduit_power|darkness|dolphins_grace|fire_resistance|glowing|haste|health_boost|hero_of_the_village|hunger|infested|instant_damage|instant_health|invisibility|jump_boost|levitation|luck|mining_fatigue|nausea|night_vision|oozing|poison|raid_omen|regeneration|resistance|saturation|slow_falling|slowness|speed|strength|trial_omen|unluck|water_breathing|weakness|weaving|wind_charged|wither";
    lines.push(format!("/gamerule ({GAMERULES})"));
    lines.push(format!("/attribute <target> ({ATTRIBUTES}) (base|get|modifier)"));
    lines.push(format!("/effect give <targets> ({EFFECTS}) [<seconds>|infinite]"));
    lines.sort();
    lines
}

const HELP: &[&str] = &[
    "/advancement (grant|revoke)",
    "/ban <targets> [<reason>]",
    "/ban-ip <target> [<reason>]",
    "/banlist [ips|players]",
    "/bossbar (add|get|list|remove|set)",
    "/clear [<targets>]",
    "/clone (<begin>|from)",
    "/damage <target> <amount> [<damageType>]",
    "/data (get|merge|modify|remove)",
    "/datapack (disable|enable|list)",
    "/debug (start|stop|function)",
    "/defaultgamemode <gamemode>",
    "/deop <targets>",
    "/difficulty [peaceful|easy|normal|hard]",
    "/effect clear [<targets>]",
    "/enchant <targets> <enchantment> [<level>]",
    "/execute (align|anchored|as|at|facing|if|in|on|positioned|rotated|store|summon|unless|run)",
    "/experience (add|set|query)",
    "/fill <from> <to> <block> [destroy|hollow|keep|outline|replace]",
    "/fillbiome <from> <to> <biome> [replace]",
    "/forceload (add|remove|query)",
    "/function <name> [<arguments>|with]",
    "/gamemode <gamemode> [<target>]",
    "/give <targets> <item> [<count>]",
    "/help [<command>]",
    "/item (modify|replace)",
    "/jfr (start|stop)",
    "/kick <targets> [<reason>]",
    "/kill [<targets>]",
    "/list [uuids]",
    "/locate (structure|biome|poi)",
    "/loot (replace|insert|give|spawn)",
    "/me <action>",
    "/msg <targets> <message>",
    "/op <targets>",
    "/pardon <targets>",
    "/pardon-ip <target>",
    "/particle <name> [<pos>]",
    "/perf (start|stop)",
    "/place (feature|jigsaw|structure|template)",
    "/playsound <sound> [master|music|record|weather|block|hostile|neutral|player|ambient|voice]",
    "/random (value|roll|reset)",
    "/recipe (give|take)",
    "/reload",
    "/return (<value>|fail|run)",
    "/ride <target> (mount|dismount)",
    "/save-all [flush]",
    "/save-off",
    "/save-on",
    "/say <message>",
    "/schedule (function|clear)",
    "/scoreboard (objectives|players)",
    "/seed",
    "/setblock <pos> <block> [destroy|keep|replace]",
    "/setidletimeout <minutes>",
    "/setworldspawn [<pos>]",
    "/spawnpoint [<targets>]",
    "/spectate [<target>]",
    "/spreadplayers <center> <spreadDistance> <maxRange> (<respectTeams>|under)",
    "/stop",
    "/stopsound <targets> [*|master|music|record|weather|block|hostile|neutral|player|ambient|voice]",
    "/summon <entity> [<pos>]",
    "/tag <targets> (add|list|remove)",
    "/team (list|add|remove|empty|join|leave|modify)",
    "/teammsg <message>",
    "/teleport (<location>|<destination>|<targets>)",
    "/tell -> msg",
    "/tellraw <targets> <message>",
    "/tick (query|rate|freeze|unfreeze|step|sprint)",
    "/time (set|add|query)",
    "/title <targets> (clear|reset|title|subtitle|actionbar|times)",
    "/tm -> teammsg",
    "/tp -> teleport",
    "/transfer <hostname> [<port>]",
    "/trigger <objective> [add|set]",
    "/w -> msg",
    "/weather (clear|rain|thunder)",
    "/whitelist (on|off|list|add|remove|reload)",
    "/worldborder (add|center|damage|get|set|warning)",
    "/xp -> experience",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_spans_several_rcon_packets() {
        let text = help_lines().join("\n");
        assert!(
            text.len() > atlas_runner::rcon::MAX_RESPONSE_FRAGMENT,
            "{}",
            text.len()
        );
        assert!(atlas_runner::rcon::split_response(1, text.as_bytes()).len() >= 2);
    }
}
