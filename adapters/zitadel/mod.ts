/**
 * The Zitadel adapter: the Management API calls that give a device its identity at
 * enrollment, behind the provider-neutral {@link IdentityProvider}.
 *
 * @module
 */

export {
  createZitadelIdentityProvider,
  type DeviceIdentity,
  type IdentityProvider,
  type ZitadelIdentityOptions,
} from "./identity.ts";
export {
  type AccessTokenType,
  createZitadelManagement,
  type MachineUserRecord,
  type MachineUserSpec,
  type ProjectRoleSpec,
  ZitadelApiError,
  type ZitadelCall,
  ZitadelCalls,
  ZitadelKeyFile,
  type ZitadelManagement,
  type ZitadelManagementOptions,
} from "./management.ts";
export {
  FLEET_PROJECT_ROLES,
  type ServiceUser,
  setupZitadel,
  type ZitadelSetupOptions,
  type ZitadelSetupResult,
} from "./setup.ts";
