// Starts flying-squid (npm; a Minecraft server in JavaScript by PrismarineJS)
// in the current directory, as its README's library example does:
// createMCServer() with flying-squid's default settings, overridden by
// ./flying-squid.json. atlas-runnerd runs it in runner/tests/it/flying_squid.rs:
//
//   NODE_PATH=target/ci-tools/flying-squid/node_modules node launch.js --no-color
//
// Not flying-squid's own app.js: it merges its defaults over the user's
// config/settings.json (`Object.assign(settings, defaultSettings, settings)`),
// so the port and MOTD given there are ignored.
//
// What flying-squid does that the runner meets (read from its source,
// version 1.11.0): it logs `Server listening on port N, version V (path: P)`
// once the game port is open; it reads console commands on stdin (`stop`
// saves, logs `Server is closed.` and exits 0); SIGTERM and SIGINT make it
// close and exit 128+signal; it answers Server List Ping with `version`,
// `players` and `description` (the MOTD). `--no-color` turns off the
// `colors` package's ANSI codes in its log lines.
//
// Nothing reaches the internet: online-mode is off (no Mojang session
// server) and no player logs in, which is all flying-squid would contact
// Mojang for. To be sure, every hostname lookup other than localhost is
// refused here and logged as `atlas-launch: refused a lookup of HOST`;
// the test fails on such a line.

'use strict'

const dns = require('dns')
const fs = require('fs')

const local = new Set(['localhost', '127.0.0.1', '::1'])
const realLookup = dns.lookup
dns.lookup = function (host, ...rest) {
  if (local.has(host)) return realLookup.call(this, host, ...rest)
  console.log(`atlas-launch: refused a lookup of ${host}`)
  const callback = rest[rest.length - 1]
  const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${host} (refused by launch.js)`), {
    code: 'ENOTFOUND',
    hostname: host
  })
  process.nextTick(callback, err)
  return {}
}

const defaults = require('flying-squid/config/default-settings.json')
const settings = JSON.parse(fs.readFileSync('flying-squid.json', 'utf8'))
const serv = require('flying-squid').createMCServer({ ...defaults, ...settings, debug: console.log })

// As flying-squid's app.js does: log, do not crash.
process.on('unhandledRejection', (err) => console.log(err.stack))
