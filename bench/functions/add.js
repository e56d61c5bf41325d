// The add handler of functions/add.py, for the Node.js peers (lambda-local).
exports.handler = async (event) => event.value1 + event.value2;
