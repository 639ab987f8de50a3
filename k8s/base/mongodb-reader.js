// Makes (or brings up to date) the read-only user for MongoDB Compass: role `read` on the
// vote log's database. Run by the mongodb-users Job with mongosh, as the root user.
const admin = db.getSiblingDB('admin');
admin.auth(process.env.MONGO_ROOT_USERNAME, process.env.MONGO_ROOT_PASSWORD);
const votes = db.getSiblingDB(process.env.MONGODB_DATABASE);
const name = process.env.MONGO_READER_USERNAME;
const user = { pwd: process.env.MONGO_READER_PASSWORD, roles: [{ role: 'read', db: process.env.MONGODB_DATABASE }] };
if (votes.getUser(name)) {
  votes.updateUser(name, user);
  print(`updated read-only user ${name}`);
} else {
  votes.createUser({ user: name, ...user });
  print(`created read-only user ${name}`);
}
