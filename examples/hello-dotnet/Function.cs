// A .NET function for lambdabox build: dotnet publish -c Release -o publish,
// then lambdabox build examples/hello-dotnet/publish (handler: the assembly).
using Amazon.Lambda.Core;
using Amazon.Lambda.RuntimeSupport;
using Amazon.Lambda.Serialization.SystemTextJson;

var handler = (Dictionary<string, string> input, ILambdaContext context) =>
    new Dictionary<string, string> { ["message"] = $"Hello, {input.GetValueOrDefault("name", "world")}!" };

await LambdaBootstrapBuilder.Create(handler, new DefaultLambdaJsonSerializer()).Build().RunAsync();
