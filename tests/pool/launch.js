// Start the stratum-pool-sha256 pool (from the npm registry) for the miner's integration tests.
//
//   node launch.js --stratum-port N --rpc-port M [--diff 0.001] [--rpc-user u --rpc-password p]
//                  [--reconnect-every K]
//
// --reconnect-every K: after answering every K-th mining.submit of a connection, send that client a
// same-host client.reconnect (no parameters), so replies to later submits are still on the wire
// when the miner reads it (the rental-service move the tests replay).
//
// The pool validates every share itself; this script only reports its verdicts. Each event is one
// stdout line "POOLEVENT {json}" (the pool's own debug output goes to stdout too, so the prefix
// tells them apart): {"event":"started"}, {"event":"share","valid":..,"block":..,"worker":..,
// "job":..,"difficulty":..,"shareDiff":..,"error":..}, {"event":"log","severity":..,"text":..}.
'use strict';

const net = require('net');

// The library listens with listen(port), i.e. on every interface. Tests must stay on loopback, so a
// bare numeric listen is pinned to 127.0.0.1 before the library is loaded.
const origListen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
    if (typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function')) {
        args.splice(1, 0, '127.0.0.1');
    }
    return origListen.apply(this, args);
};

const Stratum = require('stratum-pool-sha256');

function argValue(name, fallback) {
    const i = process.argv.indexOf('--' + name);
    return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function emit(obj) {
    process.stdout.write('POOLEVENT ' + JSON.stringify(obj) + '\n');
}

const stratumPort = parseInt(argValue('stratum-port', '0'), 10);
const rpcPort = parseInt(argValue('rpc-port', '0'), 10);
const diff = parseFloat(argValue('diff', '0.001'));
if (!stratumPort || !rpcPort || !(diff > 0)) {
    process.stderr.write('usage: node launch.js --stratum-port N --rpc-port M [--diff D]\n');
    process.exit(2);
}

const ports = {};
ports[stratumPort] = { diff: diff };

const pool = Stratum.createPool({
    coin: { name: 'Bitcoin', symbol: 'BTC', algorithm: 'sha256', asicboost: false },
    // A regtest P2PKH address; the stub's validateaddress returns its scriptPubKey.
    address: 'mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn',
    ports: ports,
    daemons: [{
        host: '127.0.0.1',
        port: rpcPort,
        user: argValue('rpc-user', 'test'),
        password: argValue('rpc-password', 'test'),
    }],
    connectionTimeout: 600,
    jobRebroadcastTimeout: 55,
    blockRefreshInterval: parseInt(argValue('poll-ms', '500'), 10),
    banning: { enabled: false },
    rewardRecipients: {},
}, function (ip, port, workerName, password, callback) {
    callback({ error: null, authorized: true, disconnect: false });
});

pool.on('share', function (isValidShare, isValidBlock, data) {
    emit({
        event: 'share',
        valid: !!isValidShare,
        block: !!isValidBlock,
        worker: data.worker,
        job: data.job,
        difficulty: data.difficulty,
        shareDiff: data.shareDiff === undefined ? null : Number(data.shareDiff),
        error: data.error || null,
    });
});

pool.on('log', function (severity, text) {
    if (severity === 'debug' && /^DEBUG:/.test(text)) return;
    emit({ event: 'log', severity: severity, text: String(text) });
});

const reconnectEvery = parseInt(argValue('reconnect-every', '0'), 10);

pool.on('started', function () {
    if (reconnectEvery > 0) {
        // Registered after the pool's own listeners, so each runs after the pool has answered the submit.
        pool.stratumServer.on('client.connected', function (client) {
            let submits = 0;
            client.on('submit', function () {
                submits += 1;
                if (submits % reconnectEvery === 0) {
                    client.socket.write(JSON.stringify({ id: null, method: 'client.reconnect', params: [] }) + '\n');
                    emit({ event: 'reconnect', after: submits });
                }
            });
        });
    }
    emit({ event: 'started', stratumPort: stratumPort });
});

process.on('SIGTERM', function () { process.exit(0); });
pool.start();
