// A test SMSC for modemd: the npm `smpp` package's server; this script only wires it.
//
// Started by tests/smsc.py. Options come as one JSON object in argv[2]:
//   {"system_id": "modemd", "password": "secret", "key": "...pem", "cert": "...pem",
//    "resend": true, "window": 50}
// Control: JSON lines on stdin. Events: JSON lines on stdout.
//   {"cmd": "deliver", "key": "m1", "pdu": {...deliver_sm fields...}}
//       short_message / message_payload given as {"hex": "..."} are sent as those bytes;
//       "via": N sends it on the N-th bound session (0 first), as an SMSC spreading load;
//       "command": "data_sm" sends it as a data_sm (SMPP 3.4 section 4.7) instead.
//   {"cmd": "burst", "count": N, "rate": R, "prefix": "...", "sender": "...", "window": W}
//       N deliver_sm with text prefix+i, at most R per second (0: as fast as the window
//       allows), at most W unanswered at a time; a "resp" event per answer with its latency.
//   {"cmd": "drop"}          destroy every connection (no unbind), as a failing link does
//   {"cmd": "unbind"}        send unbind on every bound session
//   {"cmd": "pending"}       report the deliver_sm still unanswered
//   {"cmd": "enquire_link"}  send enquire_link on every bound session; "enquire_link_resp"
//   {"cmd": "mute", "on": true}  stop answering enquire_link (a hung SMSC)
//   {"cmd": "submit_status", "status": 88}  answer each submit_sm with that error (0: accept)
//   {"cmd": "hold_submits", "on": true}     take submit_sm and never answer them
//   {"cmd": "submit_delay", "ms": 50}       answer each submit_sm after that long
//   {"cmd": "submit_ids", "prefix": "", "base": 16, "start": N}  how submit_sm_resp message
//       ids look (the counter goes on from N)
//   {"cmd": "exit"}
// With "resend": deliver_sm left unanswered when a connection goes are sent again, with new
// sequence numbers, to the next session that binds as a receiver or transceiver.
'use strict';

const fs = require('fs');
const readline = require('readline');
const smpp = require('smpp');

const options = JSON.parse(process.argv[2] || '{}');
const serverOptions = {};
if (options.key && options.cert) {
  serverOptions.key = fs.readFileSync(options.key);
  serverOptions.cert = fs.readFileSync(options.cert);
}

const bound = new Set();          // sessions bound to receive
const unanswered = new Map();     // key -> {fields, session, sentAt}
const queue = [];                 // keys waiting for a session or a window slot
let inFlight = 0;                 // sent and not answered yet
let submitCounter = 0;
let burst = null;
let muted = false;
let submitStatus = 0;             // answer submit_sm with this command_status (0: accept)
let holdSubmits = false;          // take submit_sm and never answer
let submitDelay = 0;              // ms before each submit_sm_resp (the SMSC's round trip)
// message ids: "msg" + decimal counter by default; {"cmd": "submit_ids", "prefix": "",
// "base": 16} makes them bare hex, as SMSCs that write receipts in decimal do
let submitIdPrefix = 'msg';
let submitIdBase = 10;

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function toFields(pdu) {
  const fields = Object.assign({}, pdu);
  for (const name of ['short_message', 'message_payload']) {
    const value = fields[name];
    if (value && typeof value === 'object' && typeof value.hex === 'string') {
      fields[name] = Buffer.from(value.hex, 'hex');
    }
  }
  return fields;
}

function sessionFor(entry) {
  const sessions = Array.from(bound);
  if (!sessions.length) {
    return null;
  }
  return sessions[Math.min(entry.via || 0, sessions.length - 1)];
}

function window() {
  return (burst && burst.window) || options.window || 1000000;
}

function pump() {
  while (queue.length && inFlight < window()) {
    const entry = unanswered.get(queue[0]);
    if (!entry) {
      queue.shift();
      continue;
    }
    const session = sessionFor(entry);
    if (!session) {
      return;
    }
    if (!send(session, queue.shift(), entry)) {
      // the socket is gone but its 'close' has not come yet: wait for it (or a new bind)
      // instead of trying the same key again and again, which froze the event loop
      return;
    }
  }
}

function send(session, key, entry) {
  entry.session = session;
  inFlight += 1;
  entry.sentAt = process.hrtime.bigint();
  entry.attempts += 1;
  const sent = session[entry.command](Object.assign({}, entry.fields), (resp) => {
    if (entry.session !== session || !unanswered.has(key)) {
      return;  // an answer from a session we already gave up on
    }
    unanswered.delete(key);
    entry.session = null;
    inFlight -= 1;
    const micros = Number((process.hrtime.bigint() - entry.sentAt) / 1000n);
    emit({event: 'resp', key, status: resp.command_status, sequence: resp.sequence_number,
          latency_us: micros, attempts: entry.attempts});
    if (burst) {
      burst.answered += 1;
      if (burst.answered === burst.count) {
        emit({event: 'burst_done', count: burst.count});
        burst = null;
      }
    }
    pump();
  });
  if (!sent) {
    entry.session = null;
    inFlight -= 1;
    queue.unshift(key);
  }
  return sent;
}

function deliver(key, fields, via, command) {
  unanswered.set(key, {fields, via, command: command || 'deliver_sm', session: null,
                       sentAt: null, attempts: 0});
  queue.push(key);
  pump();
}

function startBurst(cmd) {
  burst = {count: cmd.count, answered: 0, window: cmd.window || 0};
  const rate = cmd.rate || 0;
  const start = Date.now();
  let next = 0;
  const tick = () => {
    const due = rate ? Math.min(cmd.count, Math.floor((Date.now() - start) * rate / 1000) + 1)
                     : cmd.count;
    while (next < due) {
      deliver(`${cmd.prefix}${next}`, {
        source_addr_ton: 1, source_addr_npi: 1, source_addr: cmd.sender || '4915112345678',
        dest_addr_ton: 0, dest_addr_npi: 1, destination_addr: cmd.destination || '22222',
        data_coding: 3, short_message: Buffer.from(`${cmd.prefix}${next}`, 'latin1'),
      });
      next += 1;
    }
    if (next < cmd.count) {
      setTimeout(tick, 1);
    }
  };
  tick();
}

function lost(session) {
  bound.delete(session);
  for (const [key, entry] of unanswered) {
    if (entry.session === session) {
      entry.session = null;
      inFlight -= 1;
      if (options.resend) {
        queue.push(key);
      } else {
        unanswered.delete(key);
        emit({event: 'unanswered', key});
      }
    }
  }
}

const server = smpp.createServer(serverOptions, (session) => {
  const onBind = (kind) => (pdu) => {
    const ok = pdu.system_id === options.system_id && pdu.password === options.password;
    emit({event: 'bind', kind, system_id: pdu.system_id, ok});
    if (!ok) {
      session.send(pdu.response({command_status: smpp.ESME_RBINDFAIL}));
      session.close();
      return;
    }
    session.send(pdu.response({system_id: 'test-smsc'}));
    if (kind !== 'bind_transmitter') {
      bound.add(session);
      pump();
    }
  };
  for (const kind of ['bind_receiver', 'bind_transceiver', 'bind_transmitter']) {
    session.on(kind, onBind(kind));
  }
  session.on('enquire_link', (pdu) => {
    emit({event: 'enquire_link', muted});
    if (muted) {
      return;
    }
    session.send(pdu.response());
  });
  session.on('unbind', (pdu) => {
    emit({event: 'unbind'});
    session.send(pdu.response());
    lost(session);
    session.close();
  });
  session.on('submit_sm', (pdu) => {
    submitCounter += 1;
    const messageId = submitIdPrefix + submitCounter.toString(submitIdBase);
    const fields = {};
    for (const name of ['destination_addr', 'source_addr', 'data_coding', 'esm_class',
                        'registered_delivery', 'sar_msg_ref_num', 'sar_total_segments',
                        'sar_segment_seqnum', 'source_addr_ton', 'source_addr_npi',
                        'dest_addr_ton', 'dest_addr_npi', 'validity_period',
                        'dest_addr_subunit', 'protocol_id']) {
      if (pdu[name] !== undefined) {
        fields[name] = pdu[name];
      }
    }
    const sm = pdu.short_message || {};
    const raw = sm.message;
    const udh = Array.isArray(sm.udh) ? Buffer.concat(sm.udh) : null;
    emit({event: 'submit_sm', message_id: messageId, fields,
          text: typeof raw === 'string' ? raw : null,
          message_hex: Buffer.isBuffer(raw) ? raw.toString('hex') : null,
          udh_hex: udh && udh.length ? udh.toString('hex') : null,
          answered: !holdSubmits});
    if (holdSubmits) {
      return;  // as an SMSC that took the PDU and fell silent
    }
    const answer = submitStatus ? pdu.response({command_status: submitStatus})
                                : pdu.response({message_id: messageId});
    if (submitDelay > 0) {
      setTimeout(() => session.send(answer), submitDelay);  // an SMSC far away
    } else {
      session.send(answer);
    }
  });
  session.on('close', () => {
    emit({event: 'close'});
    lost(session);
  });
  session.on('error', (err) => {
    emit({event: 'error', message: String(err && err.message)});
    lost(session);
  });
});

const rl = readline.createInterface({input: process.stdin});
rl.on('line', (line) => {
  if (!line.trim()) {
    return;
  }
  const cmd = JSON.parse(line);
  if (cmd.cmd === 'deliver') {
    deliver(cmd.key, toFields(cmd.pdu), cmd.via, cmd.command);
  } else if (cmd.cmd === 'burst') {
    startBurst(cmd);
  } else if (cmd.cmd === 'drop') {
    for (const session of server.sessions.slice()) {
      lost(session);
      session.socket.destroy();
    }
    emit({event: 'dropped'});
  } else if (cmd.cmd === 'unbind') {
    for (const session of bound) {
      session.unbind();
    }
  } else if (cmd.cmd === 'enquire_link') {
    for (const session of bound) {
      session.enquire_link((resp) => emit({event: 'enquire_link_resp',
                                           status: resp.command_status}));
    }
  } else if (cmd.cmd === 'submit_status') {
    submitStatus = Number(cmd.status) || 0;
  } else if (cmd.cmd === 'submit_delay') {
    submitDelay = Number(cmd.ms) || 0;
  } else if (cmd.cmd === 'hold_submits') {
    holdSubmits = Boolean(cmd.on);
  } else if (cmd.cmd === 'submit_ids') {
    submitIdPrefix = String(cmd.prefix || '');
    submitIdBase = Number(cmd.base) || 10;
    submitCounter = Number(cmd.start) || submitCounter;
  } else if (cmd.cmd === 'mute') {
    muted = Boolean(cmd.on);
  } else if (cmd.cmd === 'pending') {
    emit({event: 'pending', keys: Array.from(unanswered.keys())});
  } else if (cmd.cmd === 'exit') {
    process.exit(0);
  }
});
rl.on('close', () => process.exit(0));

server.listen(options.port || 0, '127.0.0.1', () => {
  emit({event: 'listening', port: server.address().port});
});
