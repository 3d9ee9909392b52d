// Drives the sidecar's ESL listener with the Node `modesl` client (pinned in
// scripts/lib/deps.sh): login (modesl subscribes `event json BACKGROUND_JOB
// CHANNEL_EXECUTE_COMPLETE` itself), `api status`, a `bgapi` correlated through its own
// Job-UUID header, an unknown api. One line per check; exits non-zero on the first failure.
//
// usage: node modesl_listener.js HOST PORT PASSWORD
'use strict';

const esl = require('modesl');

const [host, port, password] = process.argv.slice(2);

function check(condition, what) {
  console.log((condition ? 'ok   ' : 'FAIL ') + what);
  if (!condition) process.exit(1);
}

const timer = setTimeout(() => check(false, 'finished within 20 s'), 20000);

const conn = new esl.Connection(host, Number(port), password, () => {
  check(conn.authed, 'connected and authenticated');
  conn.api('status', (res) => {
    const body = res.getBody();
    check(body.startsWith('UP '), 'status starts with the uptime line: ' + JSON.stringify(body.slice(0, 40)));
    check(body.includes('skypopen'), 'status names skypopen');
    conn.bgapi('status', (job) => {
      check(job.getHeader('Event-Name') === 'BACKGROUND_JOB', 'BACKGROUND_JOB event arrived');
      check(job.getHeader('Job-Command') === 'status', 'job command is status');
      check(job.getBody().startsWith('UP '), 'job body is the status text');
      conn.api('no_such_command', (unknown) => {
        check(unknown.getBody() === '-ERR no_such_command Command not found!\n',
          'unknown api: ' + JSON.stringify(unknown.getBody()));
        clearTimeout(timer);
        console.log('modesl: all checks passed');
        conn.disconnect();
        process.exit(0);
      });
    });
  });
});

conn.on('error', (err) => check(false, 'no connection error: ' + err));
