// A streaming test function for the official Node.js RIC: handler
// stream.handler writes `chunks` chunks `ms` milliseconds apart through
// awslambda.streamifyResponse; stream.url does the same as a function URL
// response (HTTP-integration prelude: status, headers, cookies).
'use strict';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  const chunks = event.chunks || 5;
  for (let i = 0; i < chunks; i++) {
    if (i > 0) await sleep(event.ms || 200);
    responseStream.write(`chunk ${i} at ${Date.now()};`);
  }
  responseStream.end();
});

exports.url = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 202,
    headers: { 'Content-Type': 'text/plain', 'X-From': 'node' },
    cookies: ['flavour=oat'],
  });
  for (let i = 0; i < 5; i++) {
    if (i > 0) await sleep(200);
    responseStream.write(`part ${i};`);
  }
  responseStream.end();
});
