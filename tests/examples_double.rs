//! The shipped examples on the FreeSWITCH double. Directory dialing's Lua script runs as it is
//! in an embedded Lua 5.2 (mod_lua's version) against a stand-in for the part of mod_lua's API
//! it uses, whose events go through the double to the sidecar and back; caller id by chat's
//! extension is read from its file and its actions are carried out as the switch would. The
//! real switch runs both in tests/real_switch_examples.rs.
mod support;

use support::example;

use mlua::{Lua, Table, Value, Variadic};
use regex::Regex;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::fs_double::wire::Event;
use support::fs_double::FsDouble;
use support::stack::{Stack, StackSpec, WAIT};

/// What the script did with its call.
#[derive(Debug, Default)]
struct Call {
    log: Vec<String>,
    prompts: Vec<String>,
    executed: Vec<(String, String)>,
    hangup: Option<String>,
}

/// mod_lua's objects, written in Lua over a few primitives the test provides (`prim`): the
/// script sees `freeswitch.Event`, `freeswitch.EventConsumer`, `freeswitch.consoleLog`,
/// `session` and `argv` as mod_lua gives them.
const MOD_LUA: &str = r#"
local prim = ...
freeswitch = {}
function freeswitch.consoleLog(level, text) prim.log(level, text) end
local function received(headers, body)
  local e = { headers = headers, body = body }
  function e:getHeader(name) return self.headers[name] end
  function e:getBody() return self.body end
  return e
end
function freeswitch.Event(kind, subclass)
  local e = { kind = kind, headers = { { "Event-Subclass", subclass } } }
  function e:addHeader(name, value) table.insert(self.headers, { name, value }) end
  function e:fire() prim.fire(self.kind, self.headers) end
  return e
end
function freeswitch.EventConsumer(kind, subclass)
  local c = { subclass = subclass, seen = prim.sent_count() }
  function c:pop(block, timeout_ms)
    local at, headers, body = prim.next_sent(self.subclass, self.seen, timeout_ms or 0)
    if not at then return nil end
    self.seen = at
    return received(headers, body)
  end
  return c
end
session = {}
function session:get_uuid() return "double-directory-call" end
function session:answer() end
function session:sleep(ms) end
function session:hangup(cause) prim.hangup(cause or "NORMAL_CLEARING") end
function session:setVariable(name, value) end
function session:playAndGetDigits(min, max, tries, timeout, terminators, prompt, invalid, regex)
  return prim.digits(prompt, regex)
end
function session:execute(app, data) prim.execute(app, data) end
"#;

/// Runs `script` with `argv` as mod_lua would for a call whose caller keys `key`.
fn run_lua(fs: &FsDouble, script: &str, argv: &[&str], key: &str) -> Call {
    let call = Mutex::new(Call::default());
    let record = |f: &dyn Fn(&mut Call)| f(&mut call.lock().unwrap_or_else(|p| p.into_inner()));
    let lua = Lua::new();
    let outcome = lua.scope(|scope| {
        let prim = lua.create_table()?;
        prim.set(
            "log",
            scope.create_function(|_, (level, text): (String, String)| {
                record(&|c| c.log.push(format!("[{level}] {}", text.trim_end())));
                Ok(())
            })?,
        )?;
        prim.set(
            "fire",
            scope.create_function(|_, (kind, headers): (String, Table)| {
                let mut fields: Vec<(String, String)> = Vec::new();
                for pair in headers.sequence_values::<Table>() {
                    let pair = pair?;
                    fields.push((pair.get(1)?, pair.get(2)?));
                }
                assert_eq!(kind, "CUSTOM", "the script fires CUSTOM events only");
                fs.with(|state| {
                    let mut all = vec![fields[0].clone()];
                    all.extend(state.standard("CUSTOM", "mod_lua.c", "lua_fire", 1));
                    all.extend(fields.into_iter().skip(1));
                    state.fire(Event {
                        headers: all,
                        body: None,
                    })
                });
                Ok(())
            })?,
        )?;
        prim.set(
            "sent_count",
            scope.create_function(|_, ()| Ok(fs.fired_count()))?,
        )?;
        prim.set(
            "next_sent",
            scope.create_function(|lua, (subclass, seen, timeout_ms): (String, usize, u64)| {
                let deadline = Instant::now() + Duration::from_millis(timeout_ms);
                loop {
                    if let Some((at, event)) = fs.fired_after(seen, &subclass) {
                        let headers = lua.create_table()?;
                        for (name, value) in &event.headers {
                            headers.set(name.as_str(), value.as_str())?;
                        }
                        let body = event.body.clone().unwrap_or_default();
                        return Ok(Variadic::from_iter([
                            Value::Integer(at as i64),
                            Value::Table(headers),
                            Value::String(lua.create_string(&body)?),
                        ]));
                    }
                    if Instant::now() >= deadline {
                        return Ok(Variadic::from_iter([Value::Nil]));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })?,
        )?;
        prim.set(
            "digits",
            scope.create_function(|_, (prompt, pattern): (String, String)| {
                let valid = Regex::new(&pattern.replace("%d", "[0-9]"))
                    .map_err(mlua::Error::external)?
                    .is_match(key);
                record(&|c| c.prompts.push(prompt.clone()));
                Ok(if valid {
                    key.to_string()
                } else {
                    String::new()
                })
            })?,
        )?;
        prim.set(
            "hangup",
            scope.create_function(|_, cause: String| {
                record(&|c| c.hangup = Some(cause.clone()));
                Ok(())
            })?,
        )?;
        prim.set(
            "execute",
            scope.create_function(|_, (app, data): (String, String)| {
                record(&|c| c.executed.push((app.clone(), data.clone())));
                Ok(())
            })?,
        )?;
        lua.load(MOD_LUA).set_name("mod_lua").call::<()>(prim)?;
        lua.globals().set("argv", argv.to_vec())?;
        lua.load(script).set_name("skype_directory.lua").exec()
    });
    if let Err(e) = outcome {
        panic!("the script failed: {e}");
    }
    call.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_dialing_script_reads_the_contacts_and_transfers_to_the_keyed_one() {
    let stack = Stack::start(StackSpec::users(&["user1"])).await;
    stack.wait_all_idle().await;
    stack.wait_contact("interface1", "echo123\tONLINE").await;
    let script = example("directory-dialing/skype_directory.lua");

    let call = tokio::task::block_in_place(|| run_lua(&stack.fs, &script, &["interface1"], "4"));
    // ONLINE, in name order: alice, bob, carol, echo123 (dave is offline).
    let menu: Vec<&str> = call
        .log
        .iter()
        .filter_map(|line| line.strip_prefix("[info] skype_directory: "))
        .filter(|line| line.contains(" = "))
        .collect();
    assert_eq!(
        menu,
        ["1 = alice", "2 = bob", "3 = carol", "4 = echo123"],
        "{call:?}"
    );
    assert_eq!(call.prompts.len(), 1, "{call:?}");
    assert_eq!(
        call.prompts[0].matches("tone_stream://").count(),
        4,
        "one tone pattern per contact: {call:?}"
    );
    assert_eq!(call.hangup, None, "{call:?}");
    assert_eq!(
        call.executed,
        [(
            "transfer".to_string(),
            "skypopen/interface1/echo123 XML default".to_string()
        )]
    );

    // The transfer lands on the skypopen dialplan: the sidecar calls echo123 from interface1.
    let destination = call.executed[0].1.split(' ').next().unwrap_or_default();
    let placed = stack.dial(destination);
    stack.fs.wait_answered(&placed.socket_leg, WAIT).await;
    let channel = stack
        .fs
        .channel(&placed.socket_leg)
        .expect("the socket leg exists");
    assert_eq!(channel.variable("skypopen_interface"), Some("interface1"));

    // No ONLINE contact at all: the script says so and hangs up, it does not hang.
    let empty = tokio::task::block_in_place(|| run_lua(&stack.fs, &script, &["nosuch"], "1"));
    assert!(empty.executed.is_empty(), "{empty:?}");
    assert_eq!(
        empty.hangup.as_deref(),
        Some("NO_ROUTE_DESTINATION"),
        "{empty:?}"
    );
}

/// The extension's actions, expanded as FreeSWITCH expands them: `$1`, `${variable}`, and
/// `${api(args)}` as an API call to the double.
struct Dialplan<'a> {
    fs: &'a FsDouble,
    vars: HashMap<String, String>,
}

impl Dialplan<'_> {
    fn expand(&self, data: &str, captured: &str) -> String {
        let variable = Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("regex");
        let api = Regex::new(r"\$\{([a-z_]+)\((.*)\)\}").expect("regex");
        let text = data.replace("$1", captured);
        let text = variable
            .replace_all(&text, |c: &regex::Captures| {
                self.vars.get(&c[1]).cloned().unwrap_or_default()
            })
            .into_owned();
        api.replace(&text, |c: &regex::Captures| {
            self.fs.api(&format!("{} {}", &c[1], &c[2]))
        })
        .into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_id_by_chat_extension_sends_the_number_then_calls() {
    let stack = Stack::start(StackSpec::users(&["user1"])).await;
    stack.wait_all_idle().await;
    let xml = example("caller-id-chat/10_skype_caller_id_chat.xml");
    let condition = Regex::new(r#"field="destination_number" expression="([^"]+)""#)
        .expect("regex")
        .captures(&xml)
        .map(|c| c[1].to_string())
        .expect("the extension has a destination_number condition");
    let dialled = "skypecid/echo123";
    let captured = Regex::new(&condition)
        .expect("the condition is a regex")
        .captures(dialled)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
        .expect("skypecid/echo123 matches the extension");

    let mut plan = Dialplan {
        fs: &stack.fs,
        vars: HashMap::from([
            ("caller_id_number".to_string(), "1000".to_string()),
            ("caller_id_name".to_string(), "Jane Doe".to_string()),
        ]),
    };
    let actions = Regex::new(r#"<action application="([^"]+)" data="([^"]*)"/>"#).expect("regex");
    let mut transferred = None;
    for action in actions.captures_iter(&xml) {
        let data = plan.expand(&action[2], &captured);
        match &action[1] {
            "set" => {
                let (name, value) = data.split_once('=').expect("set name=value");
                plan.vars.insert(name.to_string(), value.to_string());
            }
            "sleep" => {
                let ms: u64 = data.parse().expect("sleep in ms");
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            "transfer" => transferred = Some(data),
            other => panic!("the extension uses {other}, which this test does not carry out"),
        }
    }
    let transferred = transferred.expect("the extension transfers");
    let dest = transferred
        .split(' ')
        .next()
        .and_then(|d| d.strip_prefix("skype/"))
        .expect("a transfer to skype/<handle>");
    assert_eq!(dest, "echo123");

    // The chat went out from the account set in the extension, with the caller's number.
    let chat = stack
        .wait_inbox("echo123", "Call from 1000 (Jane Doe)")
        .await;
    assert_eq!(chat["from_handle"], "user1", "{chat}");
    let placed = stack.dial(dest);
    stack.fs.wait_answered(&placed.socket_leg, WAIT).await;
}
