// Lab L3.5: an Azure Machine Learning workspace, the resources it depends on, and a CPU
// compute cluster, as infrastructure as code.
//
//   az group create --name rg-dp100-labs --location westeurope
//   az deployment group create --resource-group rg-dp100-labs --template-file main.bicep
//
// The workspace needs a storage account (its default datastores), a key vault (its
// secrets) and Application Insights (endpoint telemetry, here backed by a Log Analytics
// workspace). A container registry is optional: the service creates one the first time it
// builds an image. Resource type reference: https://learn.microsoft.com/azure/templates/

@description('Region of every resource; the resource group\'s by default.')
param location string = resourceGroup().location

@description('Short prefix for the resource names: lowercase letters and digits.')
@minLength(3)
@maxLength(6)
param prefix string = 'dp100'

@description('Name of the Azure Machine Learning workspace.')
param workspaceName string = 'mlw-${prefix}-labs'

@description('Name of the compute cluster the retraining pipeline runs on.')
param clusterName string = 'cpu-cluster'

@description('VM size of the cluster\'s nodes (4 vCPUs, 14 GiB).')
param clusterVmSize string = 'Standard_DS3_v2'

@description('Most nodes the cluster scales out to; it scales in to zero when idle.')
@minValue(1)
@maxValue(10)
param clusterMaxNodes int = 2

// Globally unique names for the storage account and key vault, stable for one resource group.
var suffix = uniqueString(resourceGroup().id)

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take('st${prefix}${suffix}', 24)
  location: location
  sku: {
    name: 'Standard_LRS'
  }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
  }
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: take('kv-${prefix}-${suffix}', 24)
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Access policies, not Azure RBAC: with RBAC on, the workspace identity needs a Key Vault role
    // assignment of its own (azureml-examples turned RBAC off after Key Vault access failed, PR #3872).
    enableRbacAuthorization: false
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
  }
}

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${prefix}-${suffix}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${prefix}-${suffix}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
  }
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' = {
  name: workspaceName
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  sku: {
    name: 'Basic'
    tier: 'Basic'
  }
  properties: {
    friendlyName: workspaceName
    storageAccount: storage.id
    keyVault: keyVault.id
    applicationInsights: appInsights.id
    publicNetworkAccess: 'Enabled'
  }
}

resource cluster 'Microsoft.MachineLearningServices/workspaces/computes@2024-04-01' = {
  parent: workspace
  name: clusterName
  location: location
  properties: {
    computeType: 'AmlCompute'
    description: 'CPU cluster for the retraining pipeline (lab 3.5).'
    properties: {
      vmSize: clusterVmSize
      vmPriority: 'Dedicated'
      scaleSettings: {
        minNodeCount: 0
        maxNodeCount: clusterMaxNodes
        nodeIdleTimeBeforeScaleDown: 'PT5M'
      }
    }
  }
}

output workspaceName string = workspace.name
output clusterName string = cluster.name
output storageAccountName string = storage.name
