// A Node function for lambdabox build: lambdabox build examples/hello-node.
import ms from "ms";

export const handler = async (event, context) => {
  console.log("hello from node");
  return {
    message: `Hello, ${event.name ?? "world"}!`,
    timeout: ms(30000),
    requestId: context.awsRequestId.length > 0,
  };
};
