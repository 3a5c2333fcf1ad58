import t from 'tap'
import { MemoryClientDirectory } from '../../src/directory/clients.js'
import { authenticateUser, MemoryUserDirectory, userIdFor, usernameProblem } from '../../src/directory/users.js'
import { clientDirectoryContract, userDirectoryContract } from './directory-contract.js'

t.test('memory user directory: contract', async (t) => {
  userDirectoryContract(t, async () => new MemoryUserDirectory())
})

t.test('memory client directory: contract', async (t) => {
  clientDirectoryContract(t, async () => new MemoryClientDirectory())
})

t.test('the config file seeds the memory directory with stable subjects', async (t) => {
  const dir = await MemoryUserDirectory.fromConfig([{ username: 'Zed', password: 'zed-password', roles: ['r'], claims: {}, disabled: false }])
  const zed = await authenticateUser(dir, 'zed', 'zed-password')
  t.equal(zed?.id, userIdFor('Zed'))
  t.equal(await authenticateUser(dir, 'zed', 'wrong'), null)
})

t.test('usernames are checked', async (t) => {
  t.equal(usernameProblem('alice@example.com'), null)
  t.match(usernameProblem(''), /1 to 256/)
  t.match(usernameProblem(' alice'), /whitespace/)
  t.match(usernameProblem('a\nb'), /control/)
  t.match(usernameProblem('x'.repeat(257)), /1 to 256/)
})
