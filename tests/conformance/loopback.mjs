// loopback.mjs — preloaded (node --import) into third-party test servers that listen on
// every interface by default (server-everything), so that tests only ever bind
// 127.0.0.1: a listen(port[, cb]) without a host gets host 127.0.0.1.
import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const portOnly = typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]));
  if (portOnly && (args.length === 1 || typeof args[1] === 'function')) args.splice(1, 0, '127.0.0.1');
  return listen.apply(this, args);
};
