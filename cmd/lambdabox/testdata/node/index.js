// Test function for lambdabox, run by the official Node.js Runtime Interface
// Client (aws-lambda-ric 3.x): aws-lambda-ric index.handler. The event's "op"
// picks what it does.
'use strict';

class HandlerFailure extends Error {
  constructor(message) {
    super(message);
    this.name = 'HandlerFailure';
  }
}

exports.handler = async (event, context) => {
  const op = (event && event.op) || 'echo';
  switch (op) {
    case 'echo':
      console.log('node echo:', JSON.stringify(event.data));
      return event.data;
    case 'error':
      throw new HandlerFailure('boom: ' + event.name);
    case 'context':
      return {
        requestId: context.awsRequestId,
        functionArn: context.invokedFunctionArn,
        functionName: context.functionName,
        remainingMs: context.getRemainingTimeInMillis(),
        xrayEnv: process.env._X_AMZN_TRACE_ID || null,
      };
    default:
      throw new Error('unknown op ' + op);
  }
};
