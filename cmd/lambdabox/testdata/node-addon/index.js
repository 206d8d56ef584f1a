"use strict";
// unix-dgram is a native addon (nan, node-gyp): it loads only in the Node
// it was compiled for.
const unix = require("unix-dgram");

exports.handler = async (event) => {
  const path = "/tmp/addon-test.sock";
  try { require("fs").unlinkSync(path); } catch {}
  const sock = unix.createSocket("unix_dgram");
  const got = new Promise((resolve) => sock.on("message", (msg) => resolve(msg.toString())));
  sock.bind(path);
  const msg = Buffer.from("echo " + (event.name || "addon"));
  sock.send(msg, 0, msg.length, path);
  const echo = await got;
  sock.close();
  return { echo, node: process.versions.node.split(".")[0], modules: process.versions.modules };
};
